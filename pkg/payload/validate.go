/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Limits of a manifest.
const (
	// MaxManifestBytes is the largest manifest.json Load reads.
	MaxManifestBytes = 1 << 20
	// MaxFiles is the most files a manifest may list.
	MaxFiles = 1024
	// MaxPathLength bounds a file's relative path, so that
	// C:\k\payload\<version>\<path> stays within Windows' MAX_PATH.
	MaxPathLength = 160
	// MaxVersionLength bounds a payload version and a file's version.
	MaxVersionLength = 64
	// MaxSourceLength bounds a file's source.
	MaxSourceLength = 256
)

var (
	// versionRE: a payload version names a directory on the host.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	// kubernetesVersionRE: a Kubernetes release as `kubelet --version`
	// prints it, e.g. v1.37.2 or v1.37.0-rc.1.
	kubernetesVersionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	sha256RE            = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// sourceRE: a Go module path (a lower-case host name, then path
	// elements not starting with a dot), @, and a version.
	sourceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*(/[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*)*@[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// reservedNames are DOS device names: Windows opens the device, not a file,
// whatever the extension ("nul.txt" is NUL).
var reservedNames = map[string]bool{
	"con": true, "prn": true, "aux": true, "nul": true, "conin$": true, "conout$": true,
	"com0": true, "com1": true, "com2": true, "com3": true, "com4": true,
	"com5": true, "com6": true, "com7": true, "com8": true, "com9": true,
	"lpt0": true, "lpt1": true, "lpt2": true, "lpt3": true, "lpt4": true,
	"lpt5": true, "lpt6": true, "lpt7": true, "lpt8": true, "lpt9": true,
}

// ValidateVersion checks a payload version: 1 to 64 characters, letters,
// digits and ._+- only, starting with a letter or digit, not ending with a
// dot and not a DOS device name, so that it is one safe directory name on
// Windows.
func ValidateVersion(v string) error {
	switch {
	case v == "":
		return errors.New("must not be empty")
	case len(v) > MaxVersionLength:
		return fmt.Errorf("must be at most %d characters", MaxVersionLength)
	case !versionRE.MatchString(v):
		return errors.New("must start with a letter or digit and contain only letters, digits and . _ + -")
	case strings.HasSuffix(v, "."):
		return errors.New("must not end with a dot (Windows drops trailing dots)")
	case isReserved(v):
		return errors.New("must not be a Windows device name such as CON or NUL")
	}
	return nil
}

// ValidateKubernetesVersion checks a Kubernetes version such as v1.37.2.
func ValidateKubernetesVersion(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	if !kubernetesVersionRE.MatchString(v) {
		return errors.New("must be a Kubernetes release such as v1.37.2")
	}
	return nil
}

// ValidateSource checks a file's source: a Go module path and version,
// such as k8s.io/kubernetes@v1.37.2, at most MaxSourceLength characters.
func ValidateSource(s string) error {
	switch {
	case len(s) > MaxSourceLength:
		return fmt.Errorf("must be at most %d characters", MaxSourceLength)
	case !sourceRE.MatchString(s):
		return errors.New("must be a Go module path and version such as k8s.io/kubernetes@v1.37.2")
	}
	return nil
}

// ValidatePath checks a file's path in a payload: relative, forward
// slashes, at most MaxPathLength characters, every segment a plain
// Windows file name (printable ASCII without <>:"/\|?*, no leading or
// trailing space, no trailing dot, not "." or "..", not a device name).
// A valid path names the same file inside the payload directory on Linux
// and on Windows and can never leave it.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return errors.New("path must not be empty")
	case len(p) > MaxPathLength:
		return fmt.Errorf("path must be at most %d characters", MaxPathLength)
	case strings.HasPrefix(p, "/"):
		return errors.New("path must be relative, not start with /")
	case strings.HasSuffix(p, "/"):
		return errors.New("path must name a file, not end with /")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			return errors.New(`path must use forward slashes, not \`)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("path must not contain control character %#02x", c)
		case c >= 0x80:
			return errors.New("path must be ASCII (NTFS and Linux disagree on case for other characters)")
		case strings.IndexByte(`<>:"|?*`, c) >= 0:
			return fmt.Errorf("path must not contain %q, which Windows file names cannot hold", string(c))
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return errors.New("path must not contain an empty segment (//)")
		case seg == "." || seg == "..":
			return fmt.Errorf("path must not contain a %q segment", seg)
		case strings.HasPrefix(seg, " ") || strings.HasSuffix(seg, " "):
			return fmt.Errorf("path segment %q must not start or end with a space", seg)
		case strings.HasSuffix(seg, "."):
			return fmt.Errorf("path segment %q must not end with a dot (Windows drops trailing dots)", seg)
		case isReserved(seg):
			return fmt.Errorf("path segment %q is a Windows device name", seg)
		}
	}
	return nil
}

// isReserved reports whether a file name is a DOS device name, ignoring
// case, any extension and trailing spaces before it.
func isReserved(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	base = strings.TrimRight(base, " ")
	return reservedNames[strings.ToLower(base)]
}

// Validate checks the manifest without touching the disk: both versions,
// every file's path, component, size and checksum, no two paths naming the
// same file on a case-insensitive file system, no file where another
// needs a directory, and every component's required files present with
// the right component. The error lists every problem and wraps
// ErrInvalidManifest.
func (m *Manifest) Validate() error {
	if m == nil {
		return fmt.Errorf("%w: no manifest", ErrInvalidManifest)
	}
	var errs []error
	if err := ValidateVersion(m.Version); err != nil {
		errs = append(errs, fmt.Errorf("version %q: %w", m.Version, err))
	}
	if err := ValidateKubernetesVersion(m.KubernetesVersion); err != nil {
		errs = append(errs, fmt.Errorf("kubernetesVersion %q: %w", m.KubernetesVersion, err))
	}
	switch {
	case len(m.Files) == 0:
		errs = append(errs, errors.New("files: must list the payload's files"))
	case len(m.Files) > MaxFiles:
		errs = append(errs, fmt.Errorf("files: %d listed, at most %d allowed", len(m.Files), MaxFiles))
		return fmt.Errorf("%w: %w", ErrInvalidManifest, errors.Join(errs...))
	}

	byPath := make(map[string]int, len(m.Files)) // lower-case path -> index
	for i, f := range m.Files {
		name := fmt.Sprintf("files[%d] %q", i, f.Path)
		if err := ValidatePath(f.Path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		key := strings.ToLower(f.Path)
		if j, dup := byPath[key]; dup {
			errs = append(errs, fmt.Errorf("%s: same file as files[%d] %q on Windows, which ignores case", name, j, m.Files[j].Path))
			continue
		}
		byPath[key] = i

		switch owner, ok := ComponentOf(f.Path); {
		case !f.Component.Known():
			errs = append(errs, fmt.Errorf("%s: unknown component %q (known: %s)", name, f.Component, componentList()))
		case !ok:
			errs = append(errs, fmt.Errorf("%s: no component ships this file; extra files are allowed only under %s/", name, CNIDir))
		case owner != f.Component:
			errs = append(errs, fmt.Errorf("%s: belongs to component %q, not %q", name, owner, f.Component))
		}
		if f.Size < 0 {
			errs = append(errs, fmt.Errorf("%s: size %d must not be negative", name, f.Size))
		}
		if !sha256RE.MatchString(f.SHA256) {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 lower-case hex digits", name))
		}
		if f.Source != "" {
			if err := ValidateSource(f.Source); err != nil {
				errs = append(errs, fmt.Errorf("%s: source %q: %w", name, f.Source, err))
			}
		}
		if f.Version != "" {
			if err := ValidateVersion(f.Version); err != nil {
				errs = append(errs, fmt.Errorf("%s: version %q: %w", name, f.Version, err))
			}
		}
	}

	// A file cannot also be the directory of another file.
	for i, f := range m.Files {
		key := strings.ToLower(f.Path)
		if j, ok := byPath[key]; !ok || j != i {
			continue // invalid or duplicate, reported above
		}
		for dir, _, ok := cutLast(key); ok; dir, _, ok = cutLast(dir) {
			if j, clash := byPath[dir]; clash {
				errs = append(errs, fmt.Errorf("files[%d] %q: needs %q to be a directory, but files[%d] lists it as a file", i, m.Files[i].Path, m.Files[j].Path, j))
			}
		}
	}

	for _, c := range Components() {
		for _, p := range requiredFiles[c] {
			if _, ok := byPath[p]; !ok {
				errs = append(errs, fmt.Errorf("files: missing %q of component %q", p, c))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidManifest, errors.Join(errs...))
}

// cutLast splits a slash-separated path at its last slash.
func cutLast(p string) (dir, base string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}

func componentList() string {
	names := make([]string, 0, len(requiredFiles))
	for _, c := range Components() {
		names = append(names, string(c))
	}
	return strings.Join(names, ", ")
}
