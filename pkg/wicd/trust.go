package wicd

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// rootCert is a certificate of Plan.TrustedRootCertificates.
type rootCert struct {
	thumbprint string
	der        []byte
}

// parseTrustedRoots decodes the plan's trusted root certificates: one PEM
// CERTIFICATE each. Errors name a certificate by its index, never by its
// content.
func parseTrustedRoots(pems []string) ([]rootCert, error) {
	out := make([]rootCert, 0, len(pems))
	for i, p := range pems {
		block, rest := pem.Decode([]byte(p))
		switch {
		case block == nil || block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("trusted root certificate %d is not a PEM CERTIFICATE", i)
		case len(bytes.TrimSpace(rest)) > 0:
			return nil, fmt.Errorf("trusted root certificate %d holds more than one PEM block", i)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("trusted root certificate %d is not a valid X.509 certificate", i)
		}
		out = append(out, rootCert{thumbprint: wicdapi.Thumbprint(block.Bytes), der: block.Bytes})
	}
	return out, nil
}

// readTrustedRootsRecord returns the thumbprints the agent imported.
func readTrustedRootsRecord(files Files) ([]string, error) {
	data, err := files.ReadFile(wicdapi.TrustedRootsRecordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fsError("read "+wicdapi.TrustedRootsRecordPath, err)
	}
	var rec wicdapi.TrustedRootsRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, codedError(wicdapi.CodeFileSystem, "decode %s: %v", wicdapi.TrustedRootsRecordPath, err)
	}
	return rec.Thumbprints, nil
}

// writeTrustedRootsRecord replaces the record; an empty one removes it.
func writeTrustedRootsRecord(files Files, thumbprints []string) error {
	if len(thumbprints) == 0 {
		if err := files.Remove(wicdapi.TrustedRootsRecordPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fsError("remove "+wicdapi.TrustedRootsRecordPath, err)
		}
		return nil
	}
	thumbprints = slices.Clone(thumbprints)
	slices.Sort(thumbprints)
	data, err := json.Marshal(wicdapi.TrustedRootsRecord{Thumbprints: slices.Compact(thumbprints)})
	if err != nil {
		return codedError(wicdapi.CodeInternal, "encode %s: %v", wicdapi.TrustedRootsRecordPath, err)
	}
	if err := files.WriteFile(wicdapi.TrustedRootsRecordPath, data); err != nil {
		return fsError("write "+wicdapi.TrustedRootsRecordPath, err)
	}
	return nil
}

// applyTrustedRoots imports the plan's trusted root certificates the
// LocalMachine Root store lacks and removes those it imported earlier that
// the plan no longer lists. A certificate already in the store that the
// agent did not import is left alone, now and later. The record lists a
// certificate before it is imported, so a failure never leaves an
// imported certificate the agent would not remove.
func applyTrustedRoots(ctx context.Context, b *Backend, plan *wicdapi.Plan) ([]wicdapi.Change, error) {
	want, err := parseTrustedRoots(plan.TrustedRootCertificates)
	if err != nil {
		return nil, codedError(wicdapi.CodeInvalidPlan, "%v", err)
	}
	record, err := readTrustedRootsRecord(b.Files)
	if err != nil {
		return nil, err
	}
	var add []rootCert
	for _, c := range want {
		has, err := b.Certificates.HasRoot(ctx, c.thumbprint)
		if err != nil {
			return nil, certError("look up", c.thumbprint, err)
		}
		if !has {
			add = append(add, c)
		}
	}
	var remove []string
	for _, t := range record {
		if !slices.ContainsFunc(want, func(c rootCert) bool { return c.thumbprint == t }) {
			remove = append(remove, t)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}

	var changes []wicdapi.Change
	recorded := slices.Clone(record)
	for _, c := range add {
		if !slices.Contains(recorded, c.thumbprint) {
			recorded = append(recorded, c.thumbprint)
		}
	}
	if err := writeTrustedRootsRecord(b.Files, recorded); err != nil {
		return nil, err
	}
	imported := slices.Clone(record)
	for _, c := range add {
		if err := b.Certificates.AddRoot(ctx, c.der); err != nil {
			// Best effort: the record lists no certificate that is not
			// in the store because of the agent.
			_ = writeTrustedRootsRecord(b.Files, imported)
			return nil, certError("import", c.thumbprint, err)
		}
		imported = append(imported, c.thumbprint)
		changes = append(changes, wicdapi.Change{Kind: wicdapi.ChangeKindCertificate, Name: c.thumbprint, Action: "created"})
	}
	removed, err := removeTrustedRoots(ctx, b, remove)
	changes = append(changes, removed...)
	if err != nil {
		return nil, err
	}
	recorded = slices.DeleteFunc(recorded, func(t string) bool { return slices.Contains(remove, t) })
	if err := writeTrustedRootsRecord(b.Files, recorded); err != nil {
		return nil, err
	}
	return changes, nil
}

// removeTrustedRoots removes the certificates of these thumbprints from
// the LocalMachine Root store; those already gone are skipped.
func removeTrustedRoots(ctx context.Context, b *Backend, thumbprints []string) ([]wicdapi.Change, error) {
	var changes []wicdapi.Change
	for _, t := range thumbprints {
		has, err := b.Certificates.HasRoot(ctx, t)
		if err != nil {
			return changes, certError("look up", t, err)
		}
		if !has {
			continue
		}
		if err := b.Certificates.DeleteRoot(ctx, t); err != nil {
			return changes, certError("remove", t, err)
		}
		changes = append(changes, wicdapi.Change{Kind: wicdapi.ChangeKindCertificate, Name: t, Action: "removed"})
	}
	return changes, nil
}

// cleanupTrustedRoots removes every certificate the agent imported, then
// its record.
func cleanupTrustedRoots(ctx context.Context, b *Backend) ([]wicdapi.Change, error) {
	record, err := readTrustedRootsRecord(b.Files)
	if err != nil {
		return nil, err
	}
	changes, err := removeTrustedRoots(ctx, b, record)
	if err != nil {
		return changes, err
	}
	return changes, writeTrustedRootsRecord(b.Files, nil)
}

func certError(verb, thumbprint string, err error) *wicdapi.Error {
	code := wicdapi.CodeInternal
	if errors.Is(err, ErrUnsupported) {
		code = wicdapi.CodeUnsupported
	}
	return codedError(code, "%s certificate %s in the LocalMachine Root store: %v", verb, thumbprint, err)
}
