package instance

import "testing"

func TestCacheAnswer(t *testing.T) {
	tests := []struct {
		name     string
		cached   bool
		cachedRV string
		seen     bool
		seenRV   string
		want     bool
	}{
		{name: "held, never written or read live", cached: true, cachedRV: "5", want: true},
		{name: "held at the version last written", cached: true, cachedRV: "7", seen: true, seenRV: "7", want: true},
		{name: "held at an older version than the last write", cached: true, cachedRV: "6", seen: true, seenRV: "7", want: false},
		{name: "held at a newer version (another writer)", cached: true, cachedRV: "8", seen: true, seenRV: "7", want: false},
		{name: "not held, never seen", want: true},
		{name: "not held though written (cache behind, or deleted)", seen: true, seenRV: "7", want: false},
	}
	for _, tc := range tests {
		if got := cacheAnswer(tc.cached, tc.cachedRV, tc.seen, tc.seenRV); got != tc.want {
			t.Errorf("%s: cacheAnswer = %v, want %v", tc.name, got, tc.want)
		}
	}
}
