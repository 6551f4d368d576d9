package netcfg

import "net/netip"

// What the external tests need from inside the package.

var FindIface = findIface

// Reserved is one range a cable subnet must avoid, and why.
type Reserved struct {
	Prefix netip.Prefix
	What   string
}

func Reservations(c *Cluster, cabled map[Endpoint]bool) []Reserved {
	var out []Reserved
	for _, r := range reservations(c, cabled) {
		out = append(out, Reserved{r.p, r.what})
	}
	return out
}
