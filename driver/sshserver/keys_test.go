//go:build linux

package sshserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestParseAuthorizedKeysAcceptsKeyTypes(t *testing.T) {
	ed25519Signer, _ := newEd25519Signer(t)

	ecdsaPrivate, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecdsaKey, err := ssh.NewPublicKey(&ecdsaPrivate.PublicKey)
	require.NoError(t, err)

	rsaPrivate, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaKey, err := ssh.NewPublicKey(&rsaPrivate.PublicKey)
	require.NoError(t, err)

	want := []ssh.PublicKey{ed25519Signer.PublicKey(), ecdsaKey, rsaKey}
	entries := []string{
		authorizedLine(ed25519Signer.PublicKey()) + " alice@laptop",
		string(ssh.MarshalAuthorizedKey(ecdsaKey)), // with trailing newline
		"  " + authorizedLine(rsaKey) + "  ",
	}

	keys, err := ParseAuthorizedKeys(entries)
	require.NoError(t, err)
	require.Len(t, keys, len(want))
	for i := range want {
		assert.Equal(t, want[i].Type(), keys[i].Type(), "entry %d", i)
		assert.Equal(t, want[i].Marshal(), keys[i].Marshal(), "entry %d", i)
	}
}

func TestParseAuthorizedKeysRejectsBadEntries(t *testing.T) {
	signer, _ := newEd25519Signer(t)
	good := authorizedLine(signer.PublicKey())

	keyData := signer.PublicKey().Marshal()
	truncatedData := keyData[:len(keyData)/2]
	_, truncatedErr := ssh.ParsePublicKey(truncatedData)
	require.Error(t, truncatedErr)
	truncated := "ssh-ed25519 " + base64.StdEncoding.EncodeToString(truncatedData) + " cut@short"

	tests := []struct {
		name  string
		entry string
		want  []string
	}{
		{"empty string", "", []string{"entry is empty"}},
		{"whitespace", " \t\n", []string{"entry is empty"}},
		{"garbage", "not a key at all", []string{`"not a key at all"`, "invalid public key", "ssh: no key found"}},
		{"comment only", "# just a comment", []string{"invalid public key", "ssh: no key found"}},
		{"bad base64", "ssh-ed25519 !!!notbase64!!!", []string{"key data is not valid base64"}},
		{"truncated key", truncated, []string{"key data is invalid", truncatedErr.Error()}},
		{"key options", `from="10.0.0.1" ` + good, []string{`key options "from=\"10.0.0.1\""`, "not supported"}},
		{"two lines", good + "\n" + good, []string{"more than one line"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			keys, err := ParseAuthorizedKeys([]string{good, test.entry})
			require.Error(t, err)
			assert.Nil(t, keys)
			assert.Contains(t, err.Error(), "authorized_keys[1]")
			for _, want := range test.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestParseAuthorizedKeysQuotesLongEntryShortened(t *testing.T) {
	entry := "garbage " + strings.Repeat("x", 200)

	_, err := ParseAuthorizedKeys([]string{entry})

	require.Error(t, err)
	assert.Contains(t, err.Error(), `authorized_keys[0] "garbage xxx`)
	assert.NotContains(t, err.Error(), strings.Repeat("x", 100))
}
