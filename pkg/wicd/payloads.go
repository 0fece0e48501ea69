package wicd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// This file holds the payload-version side of rolling upgrades: staging a
// new version's folder from files already on the host, the previous plan
// and rollback, pruning old folders, and the repoint rule of apply (see
// package wicdapi).

// stageTempSuffix names the temporary file a stage copy writes beside its
// target before renaming it into place.
const stageTempSuffix = ".wicd-stage"

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readStagePlan loads and validates a stage plan file.
func readStagePlan(files Files, p string) (*wicdapi.StagePlan, error) {
	return readStrict(files, p, "stage plan", validateStagePlan)
}

// decodeStagePlan parses a stage plan strictly and validates it.
func decodeStagePlan(data []byte) (*wicdapi.StagePlan, error) {
	return decodeStrict(data, "stage plan", validateStagePlan)
}

// inVersionFolder reports whether p is an absolute path of something
// inside a payload version's folder: PayloadRoot\<version>\<more>.
func inVersionFolder(p string) bool {
	if !isAbsWindowsPath(p) || !underDir(p, wicdapi.PayloadRoot) {
		return false
	}
	rel := strings.TrimPrefix(foldPath(p), foldPath(wicdapi.PayloadRoot))
	parts := strings.FieldsFunc(rel, func(r rune) bool { return r == '\\' })
	return len(parts) >= 2
}

func validateStagePlan(sp *wicdapi.StagePlan) error {
	seen := map[string]bool{}
	for _, c := range sp.Copies {
		if (!inVersionFolder(c.From) && !samePath(c.From, wicdapi.AgentPath)) || !inVersionFolder(c.To) {
			return fmt.Errorf("copy %q to %q: both must be files in a payload version's folder under %s (the source may be %s)", c.From, c.To, wicdapi.PayloadRoot, wicdapi.AgentPath)
		}
		if samePath(c.From, c.To) {
			return fmt.Errorf("copy %q onto itself", c.From)
		}
		if !sha256Hex.MatchString(c.SHA256) {
			return fmt.Errorf("copy to %q: sha256 %q is not 64 lower-case hex digits", c.To, c.SHA256)
		}
		if seen[foldPath(c.To)] {
			return fmt.Errorf("copy to %q is listed twice", c.To)
		}
		seen[foldPath(c.To)] = true
	}
	return nil
}

// Stage carries out a stage plan under the host lock: each copy whose
// target lacks the wanted bytes is copied from a file already on the host,
// through a verified temporary file renamed into place.
func Stage(ctx context.Context, b *Backend, sp *wicdapi.StagePlan) (*wicdapi.StageResult, error) {
	if err := validateStagePlan(sp); err != nil {
		return nil, codedError(wicdapi.CodeInvalidPlan, "%v", err)
	}
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()
	// The payload's files are copied, and then uploaded, into C:\k: a
	// host's first join stages before its first upload, so that no
	// payload file lands in a folder other users may write to.
	if err := secureFolder(b, wicdapi.InstallRoot); err != nil {
		return nil, err
	}
	res := &wicdapi.StageResult{}
	// The copies' hashes, checked here, are recorded for facts, which
	// would otherwise read every staged file again.
	verified := map[string]hashCacheEntry{}
	defer rememberHashes(b.Files, verified)
	for _, c := range sp.Copies {
		if err := ctx.Err(); err != nil {
			return nil, codedError(wicdapi.CodeInternal, "stage: %v after %d copies", err, res.Copied)
		}
		copied, err := stageCopy(b.Files, c, verified)
		if err != nil {
			return nil, err
		}
		if copied < 0 {
			res.Present++
			continue
		}
		res.Copied++
		res.Bytes += copied
	}
	return res, nil
}

// stageCopy makes one copy and returns the bytes copied, or -1 when the
// target already had the wanted bytes. The target's hash cache entry goes
// into verified (hashOfWritten).
func stageCopy(files Files, c wicdapi.StageCopy, verified map[string]hashCacheEntry) (int64, error) {
	before, _ := files.Stat(c.To)
	sum, err := sha256File(files, c.To)
	switch {
	case err == nil && sum == c.SHA256:
		if before == nil {
			return -1, nil
		}
		if e, ok := hashOfWritten(files, c.To, before.Size(), sum); ok && e.ModTime == before.ModTime().UnixNano() {
			verified[c.To] = e // unchanged while it was read
		}
		return -1, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return 0, fsError("hash "+c.To, err)
	}
	undo, err := mkdirAllUndo(files, parentDir(c.To))
	if err != nil {
		return 0, fsError("create directory for "+c.To, err)
	}
	// The copy is hashed, not its source before it: what is renamed into
	// place is what was checked, and the source is read once. A failed
	// copy (a missing source among the causes) leaves nothing behind, not
	// even the folders made for it (an empty version folder would count
	// as a payload version).
	tmp := c.To + stageTempSuffix
	fail := func(err error) (int64, error) {
		_ = files.Remove(tmp)
		undo()
		return 0, err
	}
	n, err := files.CopyFile(c.From, tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(codedError(wicdapi.CodeNotFound, "copy source %s does not exist", c.From))
	}
	if err != nil {
		return fail(fsError("copy "+c.From+" to "+tmp, err))
	}
	if got, err := sha256File(files, tmp); err != nil {
		return fail(fsError("hash "+tmp, err))
	} else if got != c.SHA256 {
		return fail(codedError(wicdapi.CodeFileMismatch, "%s has sha256 %s, not %s", c.From, got, c.SHA256))
	}
	if err := files.Rename(tmp, c.To); err != nil {
		return fail(fsError("rename "+tmp+" to "+c.To, err))
	}
	if e, ok := hashOfWritten(files, c.To, n, c.SHA256); ok {
		verified[c.To] = e
	}
	return n, nil
}

// mkdirAllUndo creates dir and its missing parents; undo removes what it
// created (best effort).
func mkdirAllUndo(files Files, dir string) (undo func(), err error) {
	top := "" // the outermost folder missing
	for d := dir; isAbsWindowsPath(d); d = parentDir(d) {
		if _, err := files.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		top = d
	}
	if err := files.MkdirAll(dir); err != nil {
		return nil, err
	}
	return func() {
		if top != "" {
			_ = files.RemoveAll(top)
		}
	}, nil
}

// previousPlan returns the previous applied plan, or nil when there is
// none.
func previousPlan(files Files) (*wicdapi.Plan, error) {
	p, err := readPlan(files, wicdapi.AppliedPlanPreviousPath)
	var we *wicdapi.Error
	if errors.As(err, &we) && we.Code == wicdapi.CodeNotFound {
		return nil, nil
	}
	return p, err
}

// Rollback applies the previous plan (wicdapi.AppliedPlanPreviousPath)
// under the host lock, exactly as Apply would; the plan it replaces
// becomes the previous one. Without a previous plan it fails with
// CodeNotFound.
func Rollback(ctx context.Context, b *Backend) (*wicdapi.ApplyResult, error) {
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()
	prev, err := previousPlan(b.Files)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		return nil, codedError(wicdapi.CodeNotFound, "no previous plan to roll back to (%s does not exist)", wicdapi.AppliedPlanPreviousPath)
	}
	return apply(ctx, b, prev)
}

// Prune removes, under the host lock, every folder under
// wicdapi.PayloadRoot except the applied and the previous plan's payload
// versions. Files processes hold stay (with their folders) and are
// reported; without an applied plan nothing is removed.
func Prune(ctx context.Context, b *Backend) (*wicdapi.PruneResult, error) {
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()
	res := &wicdapi.PruneResult{Removed: []string{}}
	applied, err := appliedPlan(b.Files)
	if err != nil {
		return nil, err
	}
	if applied == nil {
		return res, nil
	}
	prev, err := previousPlan(b.Files)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{foldPath(applied.PayloadVersion): true}
	if prev != nil {
		keep[foldPath(prev.PayloadVersion)] = true
	}
	entries, err := b.Files.ReadDir(wicdapi.PayloadRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return nil, fsError("list "+wicdapi.PayloadRoot, err)
	}
	for _, e := range entries {
		if !e.IsDir() || keep[foldPath(e.Name())] || !validFolderName(e.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, codedError(wicdapi.CodeInternal, "prune: %v", err)
		}
		held, err := removeTree(b.Files, wicdapi.PayloadRoot+`\`+e.Name())
		if err != nil {
			return nil, err
		}
		if len(held) == 0 {
			res.Removed = append(res.Removed, e.Name())
		}
		res.Kept = append(res.Kept, held...)
	}
	return res, nil
}

// validFolderName rejects directory entry names that are not one plain
// path component, so that pruning never leaves PayloadRoot.
func validFolderName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `\/:`)
}

// removeTree removes a folder file by file, leaving files that processes
// hold (and the folders above them), which it returns.
func removeTree(files Files, dir string) ([]wicdapi.HeldFile, error) {
	entries, err := files.ReadDir(dir)
	if err != nil {
		return nil, fsError("list "+dir, err)
	}
	var held []wicdapi.HeldFile
	for _, e := range entries {
		if !validFolderName(e.Name()) {
			continue
		}
		p := dir + `\` + e.Name()
		if e.IsDir() {
			h, err := removeTree(files, p)
			if err != nil {
				return nil, err
			}
			held = append(held, h...)
			continue
		}
		err := files.Remove(p)
		switch {
		case errors.Is(err, ErrFileInUse):
			holders, _ := files.Holders(p)
			held = append(held, wicdapi.HeldFile{Path: p, Holders: holders})
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, fsError("remove "+p, err)
		}
	}
	if len(held) > 0 {
		return held, nil
	}
	if err := files.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fsError("remove "+dir, err)
	}
	return nil, nil
}

// payloadVersions lists the folders under PayloadRoot, sorted.
func payloadVersions(files Files) ([]string, error) {
	entries, err := files.ReadDir(wicdapi.PayloadRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// payloadPrefix is PayloadRoot and a separator, folded.
var payloadPrefix = foldPath(wicdapi.PayloadRoot) + `\`

// isPayloadPathChar reports whether c may be part of a payload path as
// the repoint rule reads one out of an argument.
func isPayloadPathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(`._+~-\/`, c) >= 0
}

// payloadRef is one payload path a service names.
type payloadRef struct {
	// Version is the payload folder's name, as written.
	Version string
	// Rel is the path inside it, with backslashes and no leading or
	// trailing separator; "" for the folder itself.
	Rel string
}

// foldASCII lower-cases ASCII letters and turns / into \, keeping every
// byte's position.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '/':
			b[i] = '\\'
		}
	}
	return string(b)
}

// payloadRefs returns the payload paths a service's binary path and
// arguments name, in order, without repeats.
func payloadRefs(svc wicdapi.Service) []payloadRef {
	var out []payloadRef
	for _, s := range append([]string{svc.Binary}, svc.Args...) {
		folded := foldASCII(s)
		for i := 0; ; {
			j := strings.Index(folded[i:], payloadPrefix)
			if j < 0 {
				break
			}
			start := i + j + len(payloadPrefix)
			end := start
			for end < len(s) && isPayloadPathChar(s[end]) {
				end++
			}
			i = end
			path := strings.Trim(strings.ReplaceAll(s[start:end], "/", `\`), `\`)
			if path == "" {
				continue
			}
			version, rel, _ := strings.Cut(path, `\`)
			ref := payloadRef{Version: version, Rel: strings.Trim(rel, `\`)}
			if !slices.ContainsFunc(out, func(r payloadRef) bool {
				return strings.EqualFold(r.Version, ref.Version) && strings.EqualFold(r.Rel, ref.Rel)
			}) {
				out = append(out, ref)
			}
		}
	}
	return out
}

// replaceFold replaces every occurrence of old in s, compared as
// foldASCII compares, with repl.
func replaceFold(s, old, repl string) string {
	folded, fold := foldASCII(s), foldASCII(old)
	var b strings.Builder
	for i := 0; ; {
		j := strings.Index(folded[i:], fold)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		b.WriteString(s[i : i+j])
		b.WriteString(repl)
		i += j + len(fold)
	}
}

// repointCandidate decides the pure part of the repoint rule: installed
// differs from desired only by the payload folder, from one old version
// to newVersion. It returns the old version and the payload paths inside
// the folder that desired names (which must be the same in both folders
// for the service to be repointed without a restart).
func repointCandidate(installed, desired wicdapi.Service, newVersion string) (old string, rels []string, ok bool) {
	refs := payloadRefs(installed)
	if len(refs) == 0 {
		return "", nil, false
	}
	old = refs[0].Version
	for _, r := range refs {
		if !strings.EqualFold(r.Version, old) {
			return "", nil, false
		}
	}
	if strings.EqualFold(old, newVersion) || old == "." || old == ".." {
		return "", nil, false
	}
	from := wicdapi.PayloadRoot + `\` + old + `\`
	to := wicdapi.PayloadRoot + `\` + newVersion + `\`
	moved := installed
	moved.Binary = replaceFold(installed.Binary, from, to)
	moved.Args = make([]string, len(installed.Args))
	for i, a := range installed.Args {
		moved.Args[i] = replaceFold(a, from, to)
	}
	if !sameService(moved, desired) {
		return "", nil, false
	}
	for _, r := range payloadRefs(desired) {
		if !strings.EqualFold(r.Version, newVersion) || !isAbsWindowsPath(to+r.Rel) {
			return "", nil, false // another folder, or a path that leaves it
		}
		rels = append(rels, r.Rel)
	}
	return old, rels, true
}

// repointable applies the repoint rule: a service whose configuration
// differs only by the payload folder, and whose payload paths are the same
// in both folders, can be pointed at the new folder without a restart.
func repointable(files Files, installed, desired wicdapi.Service, newVersion string) bool {
	old, rels, ok := repointCandidate(installed, desired, newVersion)
	if !ok {
		return false
	}
	for _, rel := range rels {
		a, b := wicdapi.PayloadRoot+`\`+old, wicdapi.PayloadRoot+`\`+newVersion
		if rel != "" {
			a, b = a+`\`+rel, b+`\`+rel
		}
		if same, err := sameTree(files, a, b); err != nil || !same {
			return false
		}
	}
	return true
}

// sameTree reports whether a and b are files with the same bytes, or
// folders with the same names holding the same trees.
func sameTree(files Files, a, b string) (bool, error) {
	ia, err := files.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := files.Stat(b)
	if err != nil {
		return false, err
	}
	switch {
	case ia.IsDir() != ib.IsDir():
		return false, nil
	case !ia.IsDir():
		if ia.Size() != ib.Size() {
			return false, nil
		}
		sa, err := sha256File(files, a)
		if err != nil {
			return false, err
		}
		sb, err := sha256File(files, b)
		return err == nil && sa == sb, err
	}
	ea, err := files.ReadDir(a)
	if err != nil {
		return false, err
	}
	eb, err := files.ReadDir(b)
	if err != nil {
		return false, err
	}
	if len(ea) != len(eb) {
		return false, nil
	}
	names := map[string]bool{}
	for _, e := range eb {
		names[foldPath(e.Name())] = true
	}
	for _, e := range ea {
		if !names[foldPath(e.Name())] {
			return false, nil
		}
		same, err := sameTree(files, a+`\`+e.Name(), b+`\`+e.Name())
		if err != nil || !same {
			return false, err
		}
	}
	return true, nil
}
