package nodelifecycle

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// zoneState is a zone's health, as upstream's.
type zoneState string

const (
	stateNormal            zoneState = "Normal"
	statePartialDisruption zoneState = "PartialDisruption"
	stateFullDisruption    zoneState = "FullDisruption"
)

type zoneCount struct{ ready, notReady int }

// zoneKey names a node's zone from its region and zone labels ("" when
// it has neither).
func zoneKey(n *corev1.Node) string {
	region, zone := n.Labels[corev1.LabelTopologyRegion], n.Labels[corev1.LabelTopologyZone]
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

func (c *Controller) state(z zoneCount) zoneState {
	switch {
	case z.ready == 0 && z.notReady > 0:
		return stateFullDisruption
	case z.notReady > 2 && float32(z.notReady)/float32(z.notReady+z.ready) >= c.cfg.UnhealthyZoneThreshold:
		return statePartialDisruption
	}
	return stateNormal
}

// handleDisruption sets each zone's tainting rate from its state. When
// every zone is fully disrupted, the fault is far likelier to be the
// control plane's view than every machine at once: nothing is tainted
// and the taints already added are removed. Leaving that mode, every
// node gets a fresh grace period.
func (c *Controller) handleDisruption(ctx context.Context, nodes []*corev1.Node, counts map[string]*zoneCount) {
	states := map[string]zoneState{}
	all := len(counts) > 0
	for zone, n := range counts {
		states[zone] = c.state(*n)
		all = all && states[zone] == stateFullDisruption
	}
	switch {
	case all && !c.allDisrupted:
		c.log.Warn("every node is not ready: no evictions until one is back")
		for _, q := range c.tainters {
			q.setRate(0)
			q.removeAll()
		}
		for _, n := range nodes {
			if hasTaint(n, unreachableTaint) || hasTaint(n, notReadyTaint) {
				c.setTaint(ctx, n.Name, nil)
			}
		}
	case !all && c.allDisrupted:
		c.log.Info("a node is ready again: evictions resume")
		now := c.clock.Now()
		for _, h := range c.health {
			h.probe = now
		}
		for zone, s := range states {
			c.setRate(zone, s, counts[zone])
		}
	case !all:
		for zone, s := range states {
			if c.zones[zone] != s {
				if c.zones[zone] != "" {
					c.log.Info("zone state changed", "zone", zone, "from", c.zones[zone], "to", s)
				}
				c.setRate(zone, s, counts[zone])
			}
		}
	}
	for zone := range c.tainters {
		if _, ok := states[zone]; !ok {
			delete(c.tainters, zone)
		}
	}
	c.zones, c.allDisrupted = states, all
}

func (c *Controller) setRate(zone string, s zoneState, n *zoneCount) {
	q := c.tainters[zone]
	switch s {
	case statePartialDisruption:
		if n.ready+n.notReady > c.cfg.LargeClusterSizeThreshold {
			q.setRate(c.cfg.SecondaryEvictionRate)
		} else {
			q.setRate(0)
		}
	default:
		q.setRate(c.cfg.EvictionRate)
	}
}
