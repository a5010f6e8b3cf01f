package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSInfo is where a member finds its certificates, under etcd's flag
// names (--cert-file and so on for clients, --peer-cert-file and so on
// for peers).
type TLSInfo struct {
	CertFile, KeyFile string // the member's certificate and key (PEM)
	// TrustedCAFile holds the CAs that sign the other side's
	// certificates: clients' (with ClientCertAuth) or peers'.
	TrustedCAFile string
	// ClientCertAuth demands a certificate signed by TrustedCAFile of
	// every connection.
	ClientCertAuth bool
}

// Empty reports whether no certificate is given: TLS is off.
func (ti TLSInfo) Empty() bool { return ti.CertFile == "" && ti.KeyFile == "" }

// config is the TLS configuration of a member serving with ti, and, for
// peers, dialing with it (RootCAs: TrustedCAFile, or the system's). flag
// prefixes the flag names in errors ("" or "peer-").
func (ti TLSInfo) config(flag string) (*tls.Config, error) {
	if ti.CertFile == "" || ti.KeyFile == "" {
		return nil, fmt.Errorf("--%scert-file and --%skey-file go together", flag, flag)
	}
	cert, err := tls.LoadX509KeyPair(ti.CertFile, ti.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--%scert-file, --%skey-file: %w", flag, flag, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if ti.TrustedCAFile != "" {
		pem, err := os.ReadFile(ti.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("--%strusted-ca-file: %w", flag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%strusted-ca-file %s holds no PEM certificate", flag, ti.TrustedCAFile)
		}
		cfg.ClientCAs, cfg.RootCAs = pool, pool
	}
	if ti.ClientCertAuth {
		if cfg.ClientCAs == nil {
			return nil, fmt.Errorf("--%sclient-cert-auth needs --%strusted-ca-file", flag, flag)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// schemeTLS checks that the URLs of a listener or a peer list use https
// exactly when TLS is on.
func schemeTLS(urls []string, on bool, flag string) error {
	for _, u := range urls {
		https, err := isHTTPS(u)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		switch {
		case https && !on:
			return fmt.Errorf("%s: %s is https:// but no certificate is given", flag, u)
		case !https && on:
			return fmt.Errorf("%s: %s is http:// but TLS is on: use https://", flag, u)
		}
	}
	return nil
}

var errScheme = errors.New("only http:// and https:// URLs are served")
