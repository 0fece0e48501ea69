//go:build windows

package windows

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

const (
	// mutexName is the machine-wide mutex held while the agent changes the
	// host, shared by every session (SSH) and the `wicd run` service.
	mutexName = `Global\wicd`
	// mutexSDDL gives LocalSystem and Administrators full access, so
	// whichever of the service and an SSH session creates the mutex, the
	// other can open it.
	mutexSDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)"
	// waitSliceMillis is how long one wait lasts before ctx is checked.
	waitSliceMillis = 100
)

// locker is wicd.Locker over a named Windows mutex.
type locker struct{}

// Lock waits for the host mutex until ctx ends. A Windows mutex belongs to
// the thread that acquired it and only that thread may release it, so a
// goroutine locked to its own OS thread acquires, holds and releases it;
// unlock may then be called from any goroutine. A mutex abandoned by a
// crashed agent is acquired as usual: applying a plan is idempotent.
func (locker) Lock(ctx context.Context) (func(), error) {
	acquired := make(chan error, 1)
	release := make(chan struct{})
	released := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		h, err := createMutex()
		if err != nil {
			acquired <- err
			return
		}
		defer func() { _ = windows.CloseHandle(h) }()
		if err := waitMutex(ctx, h); err != nil {
			acquired <- err
			return
		}
		acquired <- nil
		<-release
		_ = windows.ReleaseMutex(h)
		close(released)
	}()
	if err := <-acquired; err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(release)
			<-released
		})
	}, nil
}

// createMutex opens the host mutex, creating it if needed.
func createMutex() (windows.Handle, error) {
	sd, err := windows.SecurityDescriptorFromString(mutexSDDL)
	if err != nil {
		return 0, fmt.Errorf("security descriptor for mutex %s: %w", mutexName, err)
	}
	sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
	name, err := windows.UTF16PtrFromString(mutexName)
	if err != nil {
		return 0, err
	}
	// CreateMutex returns ERROR_ALREADY_EXISTS with a valid handle when
	// another agent created the mutex first.
	h, err := windows.CreateMutex(sa, false, name)
	if h == 0 {
		return 0, fmt.Errorf("create mutex %s: %w", mutexName, err)
	}
	return h, nil
}

// waitMutex waits for the mutex in short slices, checking ctx in between.
func waitMutex(ctx context.Context, h windows.Handle) error {
	for {
		ev, err := windows.WaitForSingleObject(h, waitSliceMillis)
		switch ev {
		case windows.WAIT_OBJECT_0, windows.WAIT_ABANDONED:
			return nil
		case uint32(windows.WAIT_TIMEOUT):
		default:
			return fmt.Errorf("wait for mutex %s: %w", mutexName, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for mutex %s: %w", mutexName, err)
		}
	}
}
