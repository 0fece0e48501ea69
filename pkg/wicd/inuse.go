package wicd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// inUsePollInterval is how often a file held by a process is tried again.
const inUsePollInterval = 200 * time.Millisecond

// untilFree runs op, which replaces or deletes path, until it succeeds,
// fails for another reason than ErrFileInUse, or ctx ends. While processes
// hold the file it writes who holds it to progress (once per change of
// holders) and keeps trying; the wait is bounded by ctx, after which it
// fails with CodeFileInUse naming the file and its holders. held is
// non-nil when op had to wait.
func untilFree(ctx context.Context, b *Backend, path string, progress io.Writer, op func() error) (held *wicdapi.HeldFile, err error) {
	t := time.NewTicker(inUsePollInterval)
	defer t.Stop()
	started := time.Now()
	for {
		err := op()
		if err == nil || !errors.Is(err, ErrFileInUse) {
			return held, err
		}
		holders, herr := b.Files.Holders(path)
		if herr != nil {
			holders = nil
		}
		if held == nil || !slices.Equal(held.Holders, holders) {
			held = &wicdapi.HeldFile{Path: path, Holders: holders}
			fmt.Fprintf(progress, "wicd: waiting for %s: %s\n", path, describeHolders(holders))
		}
		select {
		case <-ctx.Done():
			return held, &wicdapi.Error{Code: wicdapi.CodeFileInUse,
				Message: fmt.Sprintf("%s is still in use by %s after %s: %v", path, describeHolders(held.Holders), time.Since(started).Round(time.Second), err),
				Files:   []wicdapi.HeldFile{*held}}
		case <-t.C:
		}
	}
}

func describeHolders(holders []string) string {
	if len(holders) == 0 {
		return "a process the host does not name"
	}
	return strings.Join(holders, ", ")
}

// stepContext bounds one step of a command.
func stepContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = wicdapi.DefaultStepTimeout
	}
	return context.WithTimeout(ctx, d)
}
