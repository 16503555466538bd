package advertise

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Family is an IP address family.
type Family string

const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
)

// Source names where an address came from.
type Source string

const (
	SourceOverrideFile Source = "override-file"
	SourceIMDSPublic   Source = "imds-public"
	SourceIMDSLocal    Source = "imds-local"
	SourceIMDSIPv6     Source = "imds-ipv6"
	SourceGCE          Source = "gce-external"
	SourceAzure        Source = "azure-public"
)

// Result is one successful resolution. At least one of IPv4 and IPv6 is a
// valid address. When the override file exists, only the family of its
// address is set.
type Result struct {
	// IPv4 and IPv6 are the advertised addresses. Either may be the zero
	// Addr, and IPv4 is never an IPv4-mapped IPv6 address.
	IPv4, IPv6 netip.Addr

	// IPv4Source and IPv6Source name where each address came from. They are
	// "" for a zero address.
	IPv4Source, IPv6Source Source

	// Origin is the override file path or the metadata URL of the IPv4
	// address, or of the IPv6 address when there is no IPv4 address.
	Origin string

	// IPv6Origin is the override file path or the metadata URL of the IPv6
	// address, or "" when there is none.
	IPv6Origin string

	ResolvedAt time.Time

	// Trace lists every source in the order the resolution considered it.
	// Current and Cached return the same slice to every caller, so callers
	// must not modify it.
	Trace []Step
}

// Address returns the address of family and its source. The error names
// the missing family, why it is missing and how to fix it.
func (r Result) Address(family Family) (netip.Addr, Source, error) {
	switch family {
	case FamilyIPv4:
		if r.IPv4.IsValid() {
			return r.IPv4, r.IPv4Source, nil
		}
	case FamilyIPv6:
		if r.IPv6.IsValid() {
			return r.IPv6, r.IPv6Source, nil
		}
	default:
		return netip.Addr{}, "", fmt.Errorf("address family %q is not supported; use %q or %q", family, FamilyIPv4, FamilyIPv6)
	}
	return netip.Addr{}, "", r.missingFamilyError(family)
}

// missingFamilyError explains why family has no address, from the other
// family's source and from the trace.
func (r Result) missingFamilyError(family Family) error {
	other := FamilyIPv6
	otherAddr, otherSource := r.IPv6, r.IPv6Source
	if family == FamilyIPv6 {
		other = FamilyIPv4
		otherAddr, otherSource = r.IPv4, r.IPv4Source
	}

	if otherSource == SourceOverrideFile {
		return fmt.Errorf("no %s address was resolved: the override file %s contains the %s address %s, and while the file exists no other source is tried; connect over %s, or write an %s address to the file instead",
			familyName(family), r.overrideOrigin(), familyName(other), otherAddr, familyName(other), familyName(family))
	}

	var reasons []string
	for _, step := range r.Trace {
		if step.Family == family && step.Outcome != OutcomeAccepted {
			reasons = append(reasons, fmt.Sprintf("%s %s: %s", step.Source, step.Outcome, step.Reason))
		}
	}

	message := fmt.Sprintf("no %s address was resolved", familyName(family))
	if len(reasons) > 0 {
		message += " (" + strings.Join(reasons, "; ") + ")"
	}
	if family == FamilyIPv6 {
		return fmt.Errorf("%s; connect over IPv4, or give the instance an IPv6 address, or write an IPv6 address to the override file %s", message, r.overrideOrigin())
	}
	return fmt.Errorf("%s; connect over IPv6, or write an IPv4 address to the override file %s", message, r.overrideOrigin())
}

// overrideOrigin returns the override file path from the trace, which always
// starts with the override file step, or a generic name without a trace.
func (r Result) overrideOrigin() string {
	for _, step := range r.Trace {
		if step.Source == SourceOverrideFile {
			return step.Origin
		}
	}
	return "(see Config.OverrideFile)"
}

func familyName(family Family) string {
	if family == FamilyIPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// familyOf returns the family of addr, which ParseAddress has unmapped.
func familyOf(addr netip.Addr) Family {
	if addr.Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}
