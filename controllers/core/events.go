package core

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// MaxConditionMessageBytes is the longest message the API server accepts
// in a metav1.Condition.
const MaxConditionMessageBytes = 32768

// MaxEventNoteBytes is the longest note the API server accepts on an
// events.k8s.io/v1 Event; a longer one makes it reject the whole Event.
const MaxEventNoteBytes = 1024

// Recorder wraps an EventRecorder so that every note fits the API
// server's limit: a note longer than MaxEventNoteBytes is cut at a rune
// boundary and ends in "...". The operator's controllers record Events
// only through it.
func Recorder(r events.EventRecorder) events.EventRecorder {
	if _, ok := r.(truncatingRecorder); ok || r == nil {
		return r
	}
	return truncatingRecorder{r}
}

type truncatingRecorder struct{ inner events.EventRecorder }

func (t truncatingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	t.inner.Eventf(regarding, related, eventtype, reason, action, "%s", Truncate(fmt.Sprintf(note, args...), MaxEventNoteBytes))
}

// Truncate shortens s to at most n bytes (n > 3), cutting at a rune
// boundary and ending in "..." when it cuts.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
