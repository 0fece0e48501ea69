package wicd

import (
	"fmt"
	"sort"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// startOrder returns the services so that each comes after its
// dependencies; ties are broken by name so the order is stable. It fails on
// an unknown dependency or a cycle.
func startOrder(svcs []wicdapi.Service) ([]wicdapi.Service, error) {
	byName := make(map[string]wicdapi.Service, len(svcs))
	for _, s := range svcs {
		if _, dup := byName[s.Name]; dup {
			return nil, fmt.Errorf("service %q is listed twice", s.Name)
		}
		byName[s.Name] = s
	}
	indegree := make(map[string]int, len(svcs))
	dependents := make(map[string][]string)
	for _, s := range svcs {
		indegree[s.Name] += 0
		for _, d := range s.Dependencies {
			if _, ok := byName[d]; !ok {
				return nil, fmt.Errorf("service %q depends on %q, which the plan does not install", s.Name, d)
			}
			indegree[s.Name]++
			dependents[d] = append(dependents[d], s.Name)
		}
	}
	var ready []string
	for n, deg := range indegree {
		if deg == 0 {
			ready = append(ready, n)
		}
	}
	out := make([]wicdapi.Service, 0, len(svcs))
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		out = append(out, byName[n])
		for _, d := range dependents[n] {
			indegree[d]--
			if indegree[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(out) != len(svcs) {
		var stuck []string
		for n, deg := range indegree {
			if deg > 0 {
				stuck = append(stuck, n)
			}
		}
		sort.Strings(stuck)
		return nil, fmt.Errorf("services %v depend on each other in a cycle", stuck)
	}
	return out, nil
}

// dependentsClosure returns names plus every service that depends on one of
// them, directly or not.
func dependentsClosure(svcs []wicdapi.Service, names map[string]bool) map[string]bool {
	out := make(map[string]bool, len(names))
	for n := range names {
		out[n] = true
	}
	for grew := true; grew; {
		grew = false
		for _, s := range svcs {
			if out[s.Name] {
				continue
			}
			for _, d := range s.Dependencies {
				if out[d] {
					out[s.Name], grew = true, true
					break
				}
			}
		}
	}
	return out
}
