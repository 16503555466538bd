package sshserver

import "strings"

// setEnv returns env with name set to value, replacing every earlier
// entry for name.
func setEnv(env []string, name, value string) []string {
	prefix := name + "="
	result := env[:0:0]
	for _, entry := range env {
		if !strings.HasPrefix(entry, prefix) {
			result = append(result, entry)
		}
	}
	return append(result, prefix+value)
}

// lookupEnv returns the value of name in env.
func lookupEnv(env []string, name string) (string, bool) {
	prefix := name + "="
	for _, entry := range env {
		if value, found := strings.CutPrefix(entry, prefix); found {
			return value, true
		}
	}
	return "", false
}
