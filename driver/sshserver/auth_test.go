//go:build linux

package sshserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestKeyTypesLogIn(t *testing.T) {
	ed25519Signer, _ := newEd25519Signer(t)

	ecdsaPrivate, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecdsaSigner, err := ssh.NewSignerFromKey(ecdsaPrivate)
	require.NoError(t, err)

	rsaPrivate, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaSigner, err := ssh.NewSignerFromKey(rsaPrivate)
	require.NoError(t, err)
	rsaAlgorithmSigner, ok := rsaSigner.(ssh.AlgorithmSigner)
	require.True(t, ok)

	// A signer limited to one algorithm makes the client sign with that
	// algorithm only, so the login succeeds only if the server accepts it.
	onlyAlgorithm := func(algorithm string) ssh.Signer {
		signer, err := ssh.NewSignerWithAlgorithms(rsaAlgorithmSigner, []string{algorithm})
		require.NoError(t, err)
		return signer
	}

	cfg := newTestConfig(t, ed25519Signer.PublicKey(), "sleep", "300")
	cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, authorizedLine(ecdsaSigner.PublicKey()), authorizedLine(rsaSigner.PublicKey()))
	ti := startInit(t, cfg, Options{})

	tests := []struct {
		name   string
		signer ssh.Signer
	}{
		{"ed25519", ed25519Signer},
		{"ecdsa-sha2-nistp256", ecdsaSigner},
		{"rsa-sha2-256", onlyAlgorithm(ssh.KeyAlgoRSASHA256)},
		{"rsa-sha2-512", onlyAlgorithm(ssh.KeyAlgoRSASHA512)},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			client := ti.login(t, test.signer)
			session, err := client.NewSession()
			require.NoError(t, err)
			defer session.Close()

			output, err := session.Output("echo logged in")

			require.NoError(t, err)
			assert.Equal(t, "logged in\n", string(output))
		})
	}
}
