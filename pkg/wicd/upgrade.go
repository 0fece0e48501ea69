package wicd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// SelfUpgradeOptions tune SelfUpgrade.
type SelfUpgradeOptions struct {
	// StepTimeout bounds each step (stop, replace, start, check); zero
	// means wicdapi.DefaultStepTimeout.
	StepTimeout time.Duration
	// Progress receives a line per waiting step; nil discards.
	Progress io.Writer
}

// SelfUpgrade replaces the installed agent (wicdapi.AgentPath) with the
// running one, which must run from wicdapi.AgentStagingPath; the protocol
// is described in package wicdapi. The agent service is stopped first,
// because Windows refuses to replace a running executable, and the
// previous binary is kept at wicdapi.AgentPreviousPath; a new agent that
// does not start or answer is rolled back, also when ctx has ended (the
// caller's connection closed): the rollback has its own step deadlines.
// The service is started afterwards if it ran or starts at boot: an
// upgrade killed between the stop and the start left it stopped, and the
// run that finishes the job, even one that finds the agent already in
// place, starts it.
func SelfUpgrade(ctx context.Context, b *Backend, o SelfUpgradeOptions) (*wicdapi.SelfUpgradeResult, error) {
	if !samePath(b.Executable, wicdapi.AgentStagingPath) {
		return nil, codedError(wicdapi.CodeUsage, "self-upgrade runs from %s, not %s", wicdapi.AgentStagingPath, b.Executable)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()

	image, err := b.Files.ReadFile(b.Executable)
	if err != nil {
		return nil, fsError("read "+b.Executable, err)
	}
	old, err := b.Files.ReadFile(wicdapi.AgentPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fsError("read "+wicdapi.AgentPath, err)
	}
	res := &wicdapi.SelfUpgradeResult{To: b.Version}
	if old != nil {
		res.From = agentVersion(ctx, b, o.StepTimeout)
	}
	st, err := b.Services.Query(ctx, wicdapi.AgentServiceName)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrServiceNotFound) {
		return nil, svcError("query", wicdapi.AgentServiceName, err)
	}
	// The service is to run if it ran or Windows starts it at boot.
	run := exists && (st.Running || cmp.Or(st.Config.StartType, wicdapi.StartAutomatic) == wicdapi.StartAutomatic)
	if bytes.Equal(old, image) {
		if run && !st.Running {
			if err := stepDo(ctx, o.StepTimeout, func(ctx context.Context) error { return b.Services.Start(ctx, wicdapi.AgentServiceName) }); err != nil {
				return nil, svcError("start", wicdapi.AgentServiceName, err)
			}
			res.ServiceRestarted = true
		}
		return res, nil
	}
	res.Changed = true

	if exists && st.Running {
		if err := stepDo(ctx, o.StepTimeout, func(ctx context.Context) error { return b.Services.Stop(ctx, wicdapi.AgentServiceName) }); err != nil {
			return nil, svcError("stop", wicdapi.AgentServiceName, err)
		}
	}
	// restore puts the previous state back after a failure, which may
	// be that ctx ended: each of its steps has its own deadline only.
	restore := func(cause error) error {
		ctx := context.WithoutCancel(ctx)
		if old != nil {
			_ = stepDo(ctx, o.StepTimeout, func(ctx context.Context) error { return b.Services.Stop(ctx, wicdapi.AgentServiceName) })
			if _, err := replaceFile(ctx, b, wicdapi.AgentPath, old, o); err != nil {
				return fmt.Errorf("%w; and putting the previous agent back failed: %w", cause, err)
			}
		}
		if run {
			if err := stepDo(ctx, o.StepTimeout, func(ctx context.Context) error { return b.Services.Start(ctx, wicdapi.AgentServiceName) }); err != nil {
				return fmt.Errorf("%w; and restarting the previous agent failed: %w", cause, err)
			}
		}
		return cause
	}
	if old != nil {
		if err := b.Files.WriteFile(wicdapi.AgentPreviousPath, old); err != nil {
			return nil, restoreCoded(restore(fsError("keep the previous agent as "+wicdapi.AgentPreviousPath, err)))
		}
	}
	held, err := replaceFile(ctx, b, wicdapi.AgentPath, image, o)
	if held != nil {
		res.Waited = append(res.Waited, *held)
	}
	if err != nil {
		// Nothing was replaced: the old agent only needs its service back.
		old = nil
		return nil, restoreCoded(restore(err))
	}
	if run {
		if err := stepDo(ctx, o.StepTimeout, func(ctx context.Context) error { return b.Services.Start(ctx, wicdapi.AgentServiceName) }); err != nil {
			return nil, upgradeFailed(restore(fmt.Errorf("start the new agent's service: %w", err)))
		}
		res.ServiceRestarted = true
	}
	if v := agentVersion(ctx, b, o.StepTimeout); v != b.Version {
		return nil, upgradeFailed(restore(fmt.Errorf("%s version answered %q, not %q", wicdapi.AgentPath, v, b.Version)))
	}
	return res, nil
}

// replaceFile writes data over path, waiting for processes that hold it.
func replaceFile(ctx context.Context, b *Backend, path string, data []byte, o SelfUpgradeOptions) (*wicdapi.HeldFile, error) {
	sctx, cancel := stepContext(ctx, o.StepTimeout)
	defer cancel()
	held, err := untilFree(sctx, b, path, o.Progress, func() error { return b.Files.WriteFile(path, data) })
	var we *wicdapi.Error
	if err != nil && !errors.As(err, &we) {
		err = fsError("write "+path, err)
	}
	return held, err
}

// agentVersion asks the installed agent for its version; "" when it does
// not answer.
func agentVersion(ctx context.Context, b *Backend, step time.Duration) string {
	sctx, cancel := stepContext(ctx, step)
	defer cancel()
	out, err := b.Exec.Run(sctx, []string{wicdapi.AgentPath, "version"})
	if err != nil {
		return ""
	}
	var v wicdapi.Version
	if json.Unmarshal(out, &v) != nil {
		return ""
	}
	return v.Version
}

// stepDo runs fn under one step deadline.
func stepDo(ctx context.Context, step time.Duration, fn func(context.Context) error) error {
	sctx, cancel := stepContext(ctx, step)
	defer cancel()
	return fn(sctx)
}

func upgradeFailed(err error) error {
	return codedError(wicdapi.CodeUpgradeFailed, "%v; the previous agent is back in place", err)
}

// restoreCoded keeps a coded error's code (FileInUse, FileSystem).
func restoreCoded(err error) error {
	var we *wicdapi.Error
	if errors.As(err, &we) {
		return &wicdapi.Error{Code: we.Code, Message: err.Error(), Files: we.Files}
	}
	return codedError(wicdapi.CodeInternal, "%v", err)
}
