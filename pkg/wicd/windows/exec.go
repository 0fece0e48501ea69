//go:build windows

package windows

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// execer is wicd.Exec over CreateProcess (os/exec): no shell, each
// argument quoted as CommandLineToArgvW parses it back.
type execer struct{}

func (execer) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("run: empty command line")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if len(msg) > 1000 {
			msg = msg[len(msg)-1000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", argv[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// systemProgram is the path of a program in the system directory.
func systemProgram(name string) (string, error) {
	dir, err := systemDirectory()
	if err != nil {
		return "", err
	}
	return dir + `\` + name, nil
}
