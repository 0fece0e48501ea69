package wicd

import (
	"context"
	"fmt"
	"sort"
	"sync"

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

// startTogether starts the services of order (a startOrder) that do not
// run yet, each as soon as every service it depends on runs: services
// that do not depend on each other start at the same time, and the
// dependency order is kept (a service's start is asked for only once its
// dependencies' starts have returned). After a failed start no further
// start is asked for; starts under way finish. It returns the services
// started, in order, and the error of the first failed start in order.
func startTogether(ctx context.Context, order []wicdapi.Service, running map[string]bool, start func(ctx context.Context, name string) error) ([]string, error) {
	type result struct {
		done    chan struct{}
		started bool
		err     error
	}
	results := make(map[string]*result, len(order))
	for _, svc := range order {
		results[svc.Name] = &result{done: make(chan struct{})}
	}
	var (
		mu     sync.Mutex
		failed bool
		wg     sync.WaitGroup
	)
	for _, svc := range order {
		r := results[svc.Name]
		if running[svc.Name] {
			close(r.done)
			continue
		}
		wg.Go(func() {
			defer close(r.done)
			for _, d := range svc.Dependencies {
				dep := results[d]
				if dep == nil {
					continue // not in the plan: startOrder refused that
				}
				<-dep.done
				if dep.err != nil || (!dep.started && !running[d]) {
					return // not started: neither is this one
				}
			}
			mu.Lock()
			stop := failed
			mu.Unlock()
			if stop {
				return
			}
			if err := start(ctx, svc.Name); err != nil {
				r.err = svcError("start", svc.Name, err)
				mu.Lock()
				failed = true
				mu.Unlock()
				return
			}
			r.started = true
		})
	}
	wg.Wait()
	var started []string
	var first error
	for _, svc := range order {
		r := results[svc.Name]
		if r.started {
			started = append(started, svc.Name)
		}
		if r.err != nil && first == nil {
			first = r.err
		}
	}
	return started, first
}
