package wicd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// authorizedKeysTempSuffix names the file a new authorized keys file is
// written to before it is renamed into place.
const authorizedKeysTempSuffix = ".wicd-new"

// readAuthorizedKeysChange loads and decodes an AuthorizedKeysChange file
// strictly: a field this agent does not know is refused, not ignored.
func readAuthorizedKeysChange(files Files, p string) (*wicdapi.AuthorizedKeysChange, error) {
	data, err := files.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, codedError(wicdapi.CodeNotFound, "change file %s does not exist", p)
		}
		return nil, codedError(wicdapi.CodeFileSystem, "read change file %s: %v", p, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	c := &wicdapi.AuthorizedKeysChange{}
	if err := dec.Decode(c); err != nil {
		return nil, codedError(wicdapi.CodeInvalidKeys, "decode change file %s: %v", p, err)
	}
	return c, nil
}

// parsedKey is one public key of a change.
type parsedKey struct {
	line        string // as given, trimmed
	blob        string // the key's wire encoding: its identity
	fingerprint string
}

// parseKeyLine parses one authorized_keys line holding exactly one public
// key (options and comment allowed).
func parseKeyLine(line string) (parsedKey, bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' || strings.ContainsAny(line, "\r\n") {
		return parsedKey{}, false
	}
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(bytes.TrimSpace(rest)) != 0 {
		return parsedKey{}, false
	}
	return parsedKey{line: line, blob: string(k.Marshal()), fingerprint: ssh.FingerprintSHA256(k)}, true
}

// parseChange validates a change: every line one public key, no key both
// added and removed.
func parseChange(c *wicdapi.AuthorizedKeysChange) (add, remove []parsedKey, err error) {
	removing := map[string]bool{}
	for _, l := range c.Remove {
		k, ok := parseKeyLine(l)
		if !ok {
			return nil, nil, codedError(wicdapi.CodeInvalidKeys, "remove: %q is not an OpenSSH public key line", truncateLine(l))
		}
		remove = append(remove, k)
		removing[k.blob] = true
	}
	for _, l := range c.Add {
		k, ok := parseKeyLine(l)
		if !ok {
			return nil, nil, codedError(wicdapi.CodeInvalidKeys, "add: %q is not an OpenSSH public key line", truncateLine(l))
		}
		if removing[k.blob] {
			return nil, nil, codedError(wicdapi.CodeInvalidKeys, "key %s is both to add and to remove", k.fingerprint)
		}
		add = append(add, k)
	}
	return add, remove, nil
}

func truncateLine(l string) string {
	if len(l) > 80 {
		return l[:80] + "..."
	}
	return l
}

// authorizedKeysFile is the file sshd reads acct's public keys from.
func authorizedKeysFile(acct Account) (string, error) {
	if acct.Admin {
		return wicdapi.AdministratorsAuthorizedKeysPath, nil
	}
	if !isAbsWindowsPath(acct.Profile) {
		return "", codedError(wicdapi.CodeInternal, "account %s has no usable profile directory (%q)", acct.Name, acct.Profile)
	}
	return strings.TrimRight(acct.Profile, `\/`) + `\.ssh\authorized_keys`, nil
}

// AuthorizedKeys applies change to the authorized keys file of the account
// the agent runs as (see wicdapi.AuthorizedKeysArg): lines holding a key
// to remove go, keys to add that the file lacks are appended, every other
// line stays as it was. The new file is written aside and renamed into
// place; the administrators' file gets AdministratorsKeysSDDL, also when
// nothing else changes.
func AuthorizedKeys(ctx context.Context, b *Backend, change *wicdapi.AuthorizedKeysChange) (*wicdapi.AuthorizedKeysResult, error) {
	add, remove, err := parseChange(change)
	if err != nil {
		return nil, err
	}
	acct, err := b.Accounts.Current()
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "find the account the agent runs as: %v", err)
	}
	path, err := authorizedKeysFile(acct)
	if err != nil {
		return nil, err
	}
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "take the host lock: %v", err)
	}
	defer unlock()

	old, err := b.Files.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fsError("read "+path, err)
	}
	exists := err == nil
	data, res := editAuthorizedKeys(old, add, remove)
	res.File = path
	if !res.Changed {
		if exists && acct.Admin {
			if err := b.Accounts.RestrictToAdministrators(path); err != nil {
				return nil, fsError("set the permissions of "+path, err)
			}
		}
		return res, nil
	}
	if err := b.Files.MkdirAll(path[:strings.LastIndexByte(path, '\\')]); err != nil {
		return nil, fsError("create the folder of "+path, err)
	}
	tmp := path + authorizedKeysTempSuffix
	if err := b.Files.WriteFile(tmp, data); err != nil {
		return nil, fsError("write "+tmp, err)
	}
	if acct.Admin {
		// Before the rename: the file never has wider permissions in
		// place, and the descriptor moves with it.
		if err := b.Accounts.RestrictToAdministrators(tmp); err != nil {
			_ = b.Files.Remove(tmp)
			return nil, fsError("set the permissions of "+tmp, err)
		}
	}
	if err := b.Files.Rename(tmp, path); err != nil {
		_ = b.Files.Remove(tmp)
		return nil, fsError("replace "+path, err)
	}
	return res, nil
}

// editAuthorizedKeys returns the content of an authorized keys file with
// the lines holding keys of remove left out and the keys of add the file
// lacks appended. Lines end in CRLF, as Windows tools write them.
func editAuthorizedKeys(old []byte, add, remove []parsedKey) ([]byte, *wicdapi.AuthorizedKeysResult) {
	res := &wicdapi.AuthorizedKeysResult{}
	removing := map[string]bool{}
	for _, k := range remove {
		removing[k.blob] = true
	}
	removed := map[string]bool{}
	present := map[string]bool{}
	var lines []string
	text := strings.TrimRight(string(old), "\r\n")
	if text != "" {
		for _, l := range strings.Split(text, "\n") {
			l = strings.TrimRight(l, "\r")
			if k, ok := parseKeyLine(l); ok {
				if removing[k.blob] {
					if !removed[k.blob] {
						removed[k.blob] = true
						res.Removed = append(res.Removed, k.fingerprint)
					}
					continue
				}
				present[k.blob] = true
			}
			lines = append(lines, l)
		}
	}
	for _, k := range add {
		if present[k.blob] {
			continue
		}
		present[k.blob] = true
		lines = append(lines, k.line)
		res.Added = append(res.Added, k.fingerprint)
	}
	res.Changed = len(res.Added) > 0 || len(res.Removed) > 0
	if len(lines) == 0 {
		return nil, res
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n"), res
}
