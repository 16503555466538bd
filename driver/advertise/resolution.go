package advertise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// resolve runs the override file, then each cloud in Config.Clouds until one
// returns an address, and returns the override file state it saw first. The
// run holds the trace and the warnings, on failure too.
func (r *Resolver) resolve(ctx context.Context) (fileState, *run, error) {
	run := &run{}

	// An existing override file decides, and an invalid one never falls
	// through to metadata, because the operator meant to replace it.
	state, decided, err := r.resolveOverride(run)
	if decided {
		reason := "the override file exists, so no other source is tried"
		if err != nil {
			reason = "the override file exists but is invalid, and an invalid override file never falls through to metadata"
		}
		for _, cloud := range r.clouds {
			cloud.skip(run, reason)
		}
		if err != nil {
			return state, run, err
		}
		return state, r.finish(run), nil
	}

	var ipv4Errs []error
	for _, cloud := range r.clouds {
		if run.resolvedAny() {
			cloud.skip(run, "an earlier cloud in the clouds list returned an address")
			continue
		}
		if err := cloud.lookup(ctx, run); err != nil {
			// The error reaches the caller only if no cloud returns an
			// address, so log it here too.
			r.logger.Debug("a cloud returned no IPv4 address", "cloud", cloud.name(), "error", err)
			ipv4Errs = append(ipv4Errs, err)
		}
	}

	if !run.resolvedAny() {
		return state, run, joinLookupErrors(ipv4Errs)
	}
	if !run.result.IPv4.IsValid() {
		run.warn("no IPv4 address was resolved, so only the IPv6 address is advertised",
			"ipv6", run.result.IPv6, "error", joinLookupErrors(ipv4Errs))
	}
	return state, r.finish(run), nil
}

// resolveOverride records the override file step. decided is true when the
// file exists, and then err is the reason it cannot be used, if any.
func (r *Resolver) resolveOverride(run *run) (state fileState, decided bool, err error) {
	path := r.cfg.OverrideFile
	start := time.Now()

	state, err = statOverride(path)
	if err != nil {
		run.record(SourceOverrideFile, "", path, nil, start, err, "")
		return state, true, err
	}
	if !state.exists {
		run.steps = append(run.steps, overrideMissingStep(path, start))
		return state, false, nil
	}

	addr, raw, err := readOverride(path, r.openOverride)
	if errors.Is(err, fs.ErrNotExist) {
		// The path changed after the stat. Only a path that is now missing
		// falls through, so that a symbolic link whose target vanished is
		// still an error.
		again, statErr := statOverride(path)
		switch {
		case statErr != nil:
			err = statErr
		case !again.exists:
			run.steps = append(run.steps, overrideMissingStep(path, start))
			return again, false, nil
		}
		run.record(SourceOverrideFile, "", path, nil, start, err, "")
		return again, true, err
	}
	if err != nil {
		run.record(SourceOverrideFile, "", path, raw, start, err, "")
		return state, true, err
	}

	run.record(SourceOverrideFile, familyOf(addr), path, raw, start, nil, reasonFor(SourceOverrideFile))
	run.accept(addr, SourceOverrideFile, path)
	if state.worldWritable() {
		run.warn("the override file is writable by every user, so any local user can change the advertised address",
			"path", path, "mode", state.mode.Perm(), "fix", "chmod o-w "+path)
	}
	return state, true, nil
}

func overrideMissingStep(path string, start time.Time) Step {
	return Step{
		Source:   SourceOverrideFile,
		Origin:   path,
		Outcome:  OutcomeNotFound,
		Reason:   "the file does not exist, so metadata is used",
		Duration: time.Since(start),
	}
}

// finish completes the Result of a successful run.
func (r *Resolver) finish(run *run) *run {
	run.result.ResolvedAt = r.cfg.Now()
	run.result.Trace = run.steps
	return run
}

// joinLookupErrors returns the one error of a single cloud unchanged, or
// joins the errors of several clouds in the order they were tried.
func joinLookupErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return errors.New("no cloud in the clouds list returned an address")
	case 1:
		return errs[0]
	}

	args := make([]any, len(errs))
	for i, err := range errs {
		args[i] = err
	}
	return fmt.Errorf("%w"+strings.Repeat("; then %w", len(errs)-1), args...)
}
