package advertise

import "net/netip"

// store makes an outcome the cached one and logs it. A success is logged at
// info only when an address, a source or the origin changed or when a
// failure came before it. A failure is logged at warn only when its text
// differs from the previous failure, and a warning of the run only when the
// previous resolution did not have it. So a resolution repeated every few
// minutes stays quiet while nothing changes.
func (r *Resolver) store(state fileState, run *run, err error) {
	var res Result
	if err == nil {
		res = run.result
	}
	warnings := make(map[string]bool, len(run.warnings))
	for _, w := range run.warnings {
		warnings[w.key()] = true
	}

	r.mu.Lock()
	previous, hadGood := r.lastGood, r.lastGood.IPv4.IsValid() || r.lastGood.IPv6.IsValid()
	previousErrText := r.lastErrText
	previousWarnings := r.lastWarnings

	r.cached = true
	r.result = res
	r.err = err
	r.checkedAt = r.cfg.Now()
	r.overrideState = state
	r.lastWarnings = warnings
	if err == nil {
		r.lastGood = res
		r.lastErrText = ""
	} else {
		r.lastErrText = err.Error()
	}
	r.mu.Unlock()

	for _, w := range run.warnings {
		if previousWarnings[w.key()] {
			r.logger.Debug(w.message, w.args...)
			continue
		}
		r.logger.Warn(w.message, w.args...)
	}

	if err != nil {
		if err.Error() == previousErrText {
			r.logger.Debug("resolving the advertised address failed again", "error", err)
			return
		}
		r.logger.Warn("resolving the advertised address failed", "error", err)
		return
	}

	changed := previous.IPv4 != res.IPv4 || previous.IPv6 != res.IPv6
	sourceChanged := previous.IPv4Source != res.IPv4Source || previous.IPv6Source != res.IPv6Source || previous.Origin != res.Origin
	switch {
	case hadGood && changed:
		r.logger.Info("advertised address changed",
			"old_ipv4", logAddr(previous.IPv4), "ipv4", logAddr(res.IPv4),
			"old_ipv6", logAddr(previous.IPv6), "ipv6", logAddr(res.IPv6),
			"ipv4_source", res.IPv4Source, "ipv6_source", res.IPv6Source,
			"origin", res.Origin, "reason", reasonFor(primarySource(res)))
	case !hadGood || sourceChanged || previousErrText != "":
		r.logger.Info("resolved the advertised address",
			"ipv4", logAddr(res.IPv4), "ipv4_source", res.IPv4Source,
			"ipv6", logAddr(res.IPv6), "ipv6_source", res.IPv6Source,
			"origin", res.Origin, "reason", reasonFor(primarySource(res)))
	default:
		r.logger.Debug("advertised address unchanged",
			"ipv4", logAddr(res.IPv4), "ipv6", logAddr(res.IPv6), "origin", res.Origin)
	}
}

// logAddr returns addr as text, or "none" for the zero Addr, which
// netip.Addr prints as "invalid IP".
func logAddr(addr netip.Addr) string {
	if !addr.IsValid() {
		return "none"
	}
	return addr.String()
}

// primarySource returns the source of the IPv4 address, or of the IPv6
// address when there is no IPv4 address.
func primarySource(res Result) Source {
	if res.IPv4Source != "" {
		return res.IPv4Source
	}
	return res.IPv6Source
}

// reasonFor returns why the resolution order picked source.
func reasonFor(source Source) string {
	switch source {
	case SourceOverrideFile:
		return "the override file exists"
	case SourceIMDSPublic:
		return "the override file does not exist"
	case SourceIMDSLocal:
		return "the override file does not exist and public-ipv4 returned 404, so the instance has no public IPv4 address"
	case SourceIMDSIPv6:
		return "the override file does not exist and instance metadata lists an IPv6 address for the primary network interface"
	case SourceGCE, SourceAzure:
		return "the override file does not exist and no earlier cloud in the clouds list returned an address"
	}
	return ""
}
