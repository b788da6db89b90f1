// Package cacher keeps an in-memory copy of one resource's objects, fed by a
// single etcd watch, and serves lists and watches from it.
//
// This is what upstream calls the watch cache. One Cacher per resource:
//
//   - lists the resource's prefix once, then watches it from the next
//     revision; every change updates the current state, is appended to a
//     bounded history, and is dispatched to the client watches it concerns;
//   - serves watches: from the current state (resourceVersion "" or "0",
//     sendInitialEvents), or replayed from history (resourceVersion N);
//     410 Gone when N has left the history;
//   - sends BOOKMARK events to watches that asked for them at a fixed
//     interval, carrying the cache's revision, which advances even when the
//     resource is idle (etcd progress notifications), so clients can resume
//     without loss or duplicates;
//   - serves lists at resourceVersion "0" from memory, and consistent lists
//     (resourceVersion "") from memory once the cache has caught up with
//     etcd's current revision (asked for with a progress request);
//   - passes every write and every other read to etcd.
//
// Cached objects are shared between readers and never modified; callers
// must copy before changing them (the API server only encodes them).
package cacher
