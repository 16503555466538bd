package advertise

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Outcomes of a Step.
const (
	// OutcomeAccepted means the source returned a valid address, which the
	// Result uses.
	OutcomeAccepted = "accepted"
	// OutcomeRejected means the source returned a value that is not a valid
	// address for it.
	OutcomeRejected = "rejected"
	// OutcomeNotFound means the source has no address: the override file
	// does not exist, or metadata returned 404 or an empty body.
	OutcomeNotFound = "not found"
	// OutcomeFailed means the source could not be read: an I/O or HTTP
	// error, or a timeout.
	OutcomeFailed = "failed"
	// OutcomeSkipped means the source was not tried because an earlier step
	// decided the outcome.
	OutcomeSkipped = "skipped"
)

// Step is one source that a resolution considered, for an operator's view
// of why the advertised address is what it is.
type Step struct {
	Source Source

	// Family is the family that the step looked for. For the override file,
	// which may contain either family, it is the family of the address read,
	// or "" when none was.
	Family Family

	// Origin is the override file path or the metadata URL.
	Origin string

	// Value is the raw value read, quoted and cut to its first 24 bytes as
	// in errors, or "" when no value was read.
	Value string

	// Outcome is one of OutcomeAccepted, OutcomeRejected, OutcomeNotFound,
	// OutcomeFailed and OutcomeSkipped.
	Outcome string

	// Reason is the cause of the step's outcome. For a failure it is the
	// error text.
	Reason string

	// Duration is the time the step took, 0 for a skipped step.
	Duration time.Duration
}

// outcomeOf classifies the error of one source.
func outcomeOf(err error) string {
	var invalid *invalidValueError
	switch {
	case err == nil:
		return OutcomeAccepted
	case isNotFound(err):
		return OutcomeNotFound
	case errors.As(err, &invalid):
		return OutcomeRejected
	}
	return OutcomeFailed
}

// warning is a log line that a resolution leaves for store, which writes it
// at warn level only when the previous resolution did not have it.
type warning struct {
	message string
	args    []any
}

func (w warning) key() string {
	return fmt.Sprint(w.message, w.args)
}

// run collects the addresses, steps and warnings of one resolution.
type run struct {
	result   Result
	steps    []Step
	warnings []warning
}

// record appends the step of a source that was tried. raw is nil when no
// value was read, and reason is the reason for an accepted value.
func (run *run) record(source Source, family Family, origin string, raw []byte, start time.Time, err error, reason string) {
	step := Step{
		Source:   source,
		Family:   family,
		Origin:   origin,
		Outcome:  outcomeOf(err),
		Reason:   reason,
		Duration: time.Since(start),
	}
	if raw != nil {
		step.Value = quotePrefix(raw)
	}
	if err != nil {
		step.Reason = err.Error()
	}
	run.steps = append(run.steps, step)
}

// skip appends the step of a source that was not tried.
func (run *run) skip(source Source, family Family, origin, reason string) {
	run.steps = append(run.steps, Step{
		Source:  source,
		Family:  family,
		Origin:  origin,
		Outcome: OutcomeSkipped,
		Reason:  reason,
	})
}

// accept sets addr as the address of its family.
func (run *run) accept(addr netip.Addr, source Source, origin string) {
	if addr.Is4() {
		run.result.IPv4, run.result.IPv4Source, run.result.Origin = addr, source, origin
		return
	}
	run.result.IPv6, run.result.IPv6Source, run.result.IPv6Origin = addr, source, origin
	if !run.result.IPv4.IsValid() {
		run.result.Origin = origin
	}
}

func (run *run) resolvedAny() bool {
	return run.result.IPv4.IsValid() || run.result.IPv6.IsValid()
}

func (run *run) warn(message string, args ...any) {
	run.warnings = append(run.warnings, warning{message: message, args: args})
}

// warnIfNotPublic warns when a source that should return a public address,
// such as public-ipv4, returned one that SSH users outside the instance's
// network cannot reach. The address is still used, because some networks
// route private addresses to their users.
func (run *run) warnIfNotPublic(addr netip.Addr, source Source, origin, overrideFile string) {
	kind := nonPublicKind(addr)
	if kind == "" {
		return
	}
	run.warn("a public address source returned a non-public address, which SSH users outside the instance's network cannot reach",
		"source", source, "address", addr, "kind", kind, "origin", origin,
		"fix", "write the address that users connect to into the override file "+overrideFile)
}
