//go:build windows

package windows

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/openwmco/wmco/pkg/wicd"
)

// rootStoreName is the system store of trusted root CAs.
const rootStoreName = "ROOT"

// certStore is wicd.Certificates: the LocalMachine Root store through
// crypt32 (CertOpenStore with CERT_STORE_PROV_SYSTEM and
// CERT_SYSTEM_STORE_LOCAL_MACHINE). Each call opens the store on its own.
type certStore struct{}

// openRoot opens LocalMachine\Root; readOnly asks for no write access, so
// a lookup works for any user.
func openRoot(readOnly bool) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(rootStoreName)
	if err != nil {
		return 0, err
	}
	flags := uint32(windows.CERT_SYSTEM_STORE_LOCAL_MACHINE)
	if readOnly {
		flags |= windows.CERT_STORE_READONLY_FLAG
	}
	store, err := windows.CertOpenStore(windows.CERT_STORE_PROV_SYSTEM, 0, 0, flags, uintptr(unsafe.Pointer(name)))
	if err != nil {
		return 0, fmt.Errorf("open the LocalMachine Root store: %w", mapCertErr(err))
	}
	return store, nil
}

// find returns the store's certificate with this SHA-1 thumbprint, or nil;
// the caller frees it.
func find(store windows.Handle, thumbprint string) (*windows.CertContext, error) {
	hash, err := hex.DecodeString(thumbprint)
	if err != nil || len(hash) != 20 {
		return nil, fmt.Errorf("thumbprint %q is not 40 hex digits", thumbprint)
	}
	blob := windows.CryptHashBlob{Size: uint32(len(hash)), Data: &hash[0]}
	ctx, err := windows.CertFindCertificateInStore(store, windows.X509_ASN_ENCODING|windows.PKCS_7_ASN_ENCODING, 0,
		windows.CERT_FIND_SHA1_HASH, unsafe.Pointer(&blob), nil)
	if errors.Is(err, windows.Errno(windows.CRYPT_E_NOT_FOUND)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find certificate %s: %w", thumbprint, mapCertErr(err))
	}
	return ctx, nil
}

// HasRoot looks a certificate up by thumbprint.
func (certStore) HasRoot(_ context.Context, thumbprint string) (bool, error) {
	store, err := openRoot(true)
	if err != nil {
		return false, err
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	ctx, err := find(store, thumbprint)
	if err != nil || ctx == nil {
		return false, err
	}
	_ = windows.CertFreeCertificateContext(ctx)
	return true, nil
}

// AddRoot imports a DER certificate; CERT_STORE_ADD_USE_EXISTING keeps a
// certificate already there as it is.
func (certStore) AddRoot(_ context.Context, der []byte) error {
	if len(der) == 0 {
		return errors.New("empty certificate")
	}
	cert, err := windows.CertCreateCertificateContext(windows.X509_ASN_ENCODING|windows.PKCS_7_ASN_ENCODING, &der[0], uint32(len(der)))
	if err != nil {
		return fmt.Errorf("decode certificate: %w", mapCertErr(err))
	}
	defer func() { _ = windows.CertFreeCertificateContext(cert) }()
	store, err := openRoot(false)
	if err != nil {
		return err
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	if err := windows.CertAddCertificateContextToStore(store, cert, windows.CERT_STORE_ADD_USE_EXISTING, nil); err != nil {
		return fmt.Errorf("add certificate: %w", mapCertErr(err))
	}
	return nil
}

// DeleteRoot removes a certificate by thumbprint.
func (certStore) DeleteRoot(_ context.Context, thumbprint string) error {
	store, err := openRoot(false)
	if err != nil {
		return err
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	ctx, err := find(store, thumbprint)
	if err != nil || ctx == nil {
		return err
	}
	// CertDeleteCertificateFromStore frees the context, even on failure.
	if err := windows.CertDeleteCertificateFromStore(ctx); err != nil {
		return fmt.Errorf("delete certificate %s: %w", thumbprint, mapCertErr(err))
	}
	return nil
}

// mapCertErr adds the agent's sentinels: a missing API (Wine) is
// wicd.ErrUnsupported.
func mapCertErr(err error) error {
	var errno windows.Errno
	if errors.As(err, &errno) && (errno == windows.ERROR_CALL_NOT_IMPLEMENTED || errno == windows.ERROR_NOT_SUPPORTED) {
		return fmt.Errorf("%w: %w", wicd.ErrUnsupported, err)
	}
	return err
}

var _ wicd.Certificates = certStore{}
