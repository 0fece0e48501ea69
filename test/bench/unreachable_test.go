package main

import (
	"slices"
	"testing"
	"time"
)

func TestMedianUnreachable(t *testing.T) {
	s := time.Second
	cases := []struct {
		name  string
		goods []time.Duration
		want  time.Duration
	}{
		{"one run", []time.Duration{7 * s}, 7 * s},
		{"odd", []time.Duration{9 * s, 7 * s, 8 * s}, 8 * s},
		{"an outlier does not move it", []time.Duration{7 * s, 30 * s, 8 * s}, 8 * s},
		{"even: the upper middle", []time.Duration{10 * s, 7 * s, 9 * s, 8 * s}, 9 * s},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runs := make([]unreachableResult, len(tc.goods))
			for i, g := range tc.goods {
				runs[i] = unreachableResult{name: "together", good: g, deadReasons: map[string]int{"run": i}}
			}
			got := medianUnreachable(runs)
			if got.good != tc.want {
				t.Errorf("good = %s, want %s", got.good, tc.want)
			}
			if !slices.Equal(got.samples, tc.goods) {
				t.Errorf("samples = %v, want every run in the order they ran %v", got.samples, tc.goods)
			}
			// The reasons are those of the median run itself.
			if want := slices.Index(tc.goods, tc.want); got.deadReasons["run"] != want {
				t.Errorf("dead reasons of run %d, want those of run %d", got.deadReasons["run"], want)
			}
			if runs[0].samples != nil {
				t.Error("the runs passed in were changed")
			}
		})
	}
}
