package winsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Program is an executable on the simulated host. Exec requests naming its
// path run it.
type Program interface {
	// Run executes one invocation and returns the process exit code. ctx
	// is cancelled when the client closes the channel, the connection
	// drops, or the host shuts down; Run should then return promptly.
	Run(ctx context.Context, inv *Invocation) int
}

// ProgramFunc adapts a function to Program.
type ProgramFunc func(ctx context.Context, inv *Invocation) int

// Run implements Program.
func (f ProgramFunc) Run(ctx context.Context, inv *Invocation) int { return f(ctx, inv) }

// Invocation is one run of a Program.
type Invocation struct {
	// Host is the machine the program runs on: its Disk, Facts and
	// components.
	Host *Host
	// User is the account the SSH client logged in as.
	User string
	// Path is the program's canonical path ("C:\k\wicd.exe"), or its bare
	// name for a program registered without a path.
	Path string
	// Args is the command line split on spaces; Args[0] is the program as
	// the client typed it.
	Args []string
	// Stdin is the client's input; Stdout and Stderr go to the client.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// RegisterProgram installs p at path, replacing any program there. path is
// either an absolute Windows path in any accepted form ("C:\k\wicd.exe",
// "C:/k/wicd.exe") or a bare name ("tool.exe") that only bare-name exec
// requests find. A bare-name request also finds programs registered in
// C:\Windows\System32, C:\Windows and Windows PowerShell's directory, as
// cmd.exe searches PATH. Lookups are case-insensitive, and, as with cmd.exe's
// PATHEXT, a name without an extension also finds its ".exe".
func (h *Host) RegisterProgram(path string, p Program) error {
	key, display, err := programKey(path)
	if err != nil {
		return fmt.Errorf("winsim: register program %q: %w", path, err)
	}
	if p == nil {
		return fmt.Errorf("winsim: register program %q: nil program", path)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.programs[key] = registeredProgram{program: p, path: display}
	return nil
}

// registeredProgram is a program and the path it was registered at.
type registeredProgram struct {
	program Program
	path    string
}

// UnregisterProgram removes the program at path, if any.
func (h *Host) UnregisterProgram(path string) {
	key, _, err := programKey(path)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.programs, key)
}

// programKey returns the registry key and display path of a program path.
func programKey(path string) (key, display string, err error) {
	if path == "" {
		return "", "", errInvalidName
	}
	if !strings.ContainsAny(path, `\/:`) {
		if strings.ContainsAny(path, `<>"|?*`) {
			return "", "", errInvalidName
		}
		return foldName(path), path, nil
	}
	drive, parts, err := splitPath(path)
	if err != nil {
		return "", "", err
	}
	if drive == 0 || len(parts) == 0 {
		return "", "", errInvalidName
	}
	canon := canonicalPath(drive, parts)
	return foldName(canon), canon, nil
}

// searchPath is the PATH a bare program name is looked up in, after
// programs registered under bare names.
var searchPath = []string{`C:\Windows\System32`, `C:\Windows`, `C:\Windows\System32\WindowsPowerShell\v1.0`}

// lookupProgram finds the program an exec request names: by path, or for a
// bare name among programs registered under bare names and then in
// searchPath's directories. A name without an extension also finds its
// ".exe".
func (h *Host) lookupProgram(name string) (Program, string, bool) {
	key, _, err := programKey(name)
	if err != nil {
		return nil, "", false
	}
	candidates := []string{key}
	if !strings.ContainsAny(name, `\/:`) {
		for _, dir := range searchPath {
			candidates = append(candidates, foldName(dir+`\`+name))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range candidates {
		if r, ok := h.programs[k]; ok {
			return r.program, r.path, true
		}
		if !strings.Contains(k[strings.LastIndexByte(k, '\\')+1:], ".") {
			if r, ok := h.programs[k+".EXE"]; ok {
				return r.program, r.path, true
			}
		}
	}
	return nil, "", false
}

// notRecognized is cmd.exe's answer to an unknown command.
func notRecognized(name string) string {
	return "'" + name + "' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
}

// Exec runs a program on the host as CreateProcess would for another
// program (no shell): argv[0] is looked up as an exec request's is, and its
// file is held while it runs. It returns the exit code, or an error when
// no program answers to argv[0] or the host is not up.
func (h *Host) Exec(ctx context.Context, user string, argv []string, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, fmt.Errorf("winsim: exec: empty command line")
	}
	prog, path, ok := h.lookupProgram(argv[0])
	if !ok {
		return 0, fmt.Errorf("winsim: exec %s: %w", argv[0], errFileNotFound)
	}
	h.mu.Lock()
	up, boot := h.state == StateUp, h.boot
	h.mu.Unlock()
	if !up {
		return 0, ErrNotUp
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(boot.ctx, cancel)
	defer stop()
	return h.runProgram(ctx, prog, &Invocation{
		Host: h, User: user, Path: path, Args: slices.Clone(argv),
		Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
	}), nil
}

// errFileNotFound mirrors Windows' ERROR_FILE_NOT_FOUND.
var errFileNotFound = errors.New("The system cannot find the file specified.")

// baseName is the last component of a Windows path.
func baseName(p string) string { return p[strings.LastIndexAny(p, `\/`)+1:] }
