// Package typedhandler adapts typed callbacks to a client-go informer's
// event handler: objects arrive as T, and a deletion the informer missed
// (cache.DeletedFinalStateUnknown) arrives as the last state it knew.
package typedhandler

import "k8s.io/client-go/tools/cache"

// Funcs returns an event handler calling add, update and del (any may be
// nil) with objects of type T; objects of other types are ignored.
func Funcs[T any](add func(T), update func(old, cur T), del func(T)) cache.ResourceEventHandlerFuncs {
	var h cache.ResourceEventHandlerFuncs
	if add != nil {
		h.AddFunc = func(obj any) {
			if o, ok := obj.(T); ok {
				add(o)
			}
		}
	}
	if update != nil {
		h.UpdateFunc = func(old, cur any) {
			o, ok1 := old.(T)
			c, ok2 := cur.(T)
			if ok1 && ok2 {
				update(o, c)
			}
		}
	}
	if del != nil {
		h.DeleteFunc = func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(T); ok {
				del(o)
			}
		}
	}
	return h
}

// Keys returns an event handler passing the "namespace/name" key of every
// added, updated or deleted object to add (a work queue's Add).
func Keys(add func(key string)) cache.ResourceEventHandlerFuncs {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			add(key)
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue}
}
