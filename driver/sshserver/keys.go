package sshserver

import (
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxQuotedEntryLength limits how much of a bad authorized_keys entry an
// error message quotes.
const maxQuotedEntryLength = 40

// ParseAuthorizedKeys parses each entry as one OpenSSH authorized_keys line.
// An empty or unparsable entry is an error that names its index and the
// parse error. Entries with key options (from=, command=, ...) are rejected
// because the server cannot enforce them, and ignoring a from= restriction
// would let in more clients than the line allows.
func ParseAuthorizedKeys(entries []string) ([]ssh.PublicKey, error) {
	keys := make([]ssh.PublicKey, 0, len(entries))
	for index, entry := range entries {
		key, err := parseAuthorizedKey(entry)
		if err != nil {
			return nil, fmt.Errorf("authorized_keys[%d] %s: %w", index, quoteEntry(entry), err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func parseAuthorizedKey(entry string) (ssh.PublicKey, error) {
	if strings.TrimSpace(entry) == "" {
		return nil, fmt.Errorf(`entry is empty; set one OpenSSH public key line such as "ssh-ed25519 AAAA... user@host"`)
	}

	// x/crypto's parser skips lines it cannot parse, and it reads a first
	// field that is not a key type as options. An entry must therefore be
	// one line that starts with its key type, so no dropped text can hide a
	// restriction.
	trimmed := strings.TrimSpace(entry)
	if strings.ContainsAny(trimmed, "\r\n") {
		return nil, fmt.Errorf("entry contains more than one line; put each key in its own entry")
	}

	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(entry))
	if err != nil {
		return nil, fmt.Errorf("invalid public key: %w; copy the whole line from the user's public key file, for example ~/.ssh/id_ed25519.pub", explainKeyError(entry, err))
	}
	if len(options) > 0 {
		return nil, fmt.Errorf("key options %q are not supported; remove them from the line", strings.Join(options, ","))
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("entry contains more than one line; put each key in its own entry")
	}
	if !strings.HasPrefix(trimmed, key.Type()+" ") {
		return nil, fmt.Errorf("entry does not start with its key type %q; write the line as \"%s AAAA... comment\"", key.Type(), key.Type())
	}
	return key, nil
}

// explainKeyError replaces the "ssh: no key found" of ssh.ParseAuthorizedKey
// with the reason when a "type base64-data [comment]" line has key data that
// does not decode or parse, for example a truncated key.
func explainKeyError(entry string, err error) error {
	fields := strings.Fields(entry)
	if len(fields) < 2 || !looksLikeKeyType(fields[0]) {
		return err
	}

	data, decodeErr := base64.StdEncoding.DecodeString(fields[1])
	if decodeErr != nil {
		return fmt.Errorf("the key data is not valid base64 (%v)", decodeErr)
	}
	if _, parseErr := ssh.ParsePublicKey(data); parseErr != nil {
		return fmt.Errorf("the key data is invalid (%v)", parseErr)
	}
	return err
}

func looksLikeKeyType(field string) bool {
	for _, prefix := range []string{"ssh-", "ecdsa-", "sk-"} {
		if strings.HasPrefix(field, prefix) {
			return true
		}
	}
	return false
}

// quoteEntry quotes the start of an entry for error messages.
func quoteEntry(entry string) string {
	if len(entry) > maxQuotedEntryLength {
		return fmt.Sprintf("%q...", entry[:maxQuotedEntryLength])
	}
	return fmt.Sprintf("%q", entry)
}
