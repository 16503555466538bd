package advertise

// store makes an outcome the cached one and logs it. A success is logged at
// info only when the address, source or origin changed or when a failure came
// before it. A failure is logged at warn only when its text differs from the
// previous failure. So a resolution repeated every few minutes stays quiet
// while nothing changes.
func (r *Resolver) store(state fileState, res Result, err error) {
	r.mu.Lock()
	previous, hadGood := r.lastGood, r.lastGood.Address.IsValid()
	previousErrText := r.lastErrText

	r.cached = true
	r.result = res
	r.err = err
	r.checkedAt = r.cfg.Now()
	r.overrideState = state
	if err == nil {
		r.lastGood = res
		r.lastErrText = ""
	} else {
		r.lastErrText = err.Error()
	}
	r.mu.Unlock()

	if err != nil {
		if err.Error() == previousErrText {
			r.logger.Debug("resolving the advertised address failed again", "error", err)
			return
		}
		r.logger.Warn("resolving the advertised address failed", "error", err)
		return
	}

	switch {
	case hadGood && previous.Address != res.Address:
		r.logger.Info("advertised address changed",
			"old_address", previous.Address, "address", res.Address,
			"old_source", previous.Source, "source", res.Source,
			"origin", res.Origin, "reason", reasonFor(res.Source))
	case !hadGood || previous.Source != res.Source || previous.Origin != res.Origin || previousErrText != "":
		r.logger.Info("resolved the advertised address",
			"address", res.Address, "source", res.Source,
			"origin", res.Origin, "reason", reasonFor(res.Source))
	default:
		r.logger.Debug("advertised address unchanged",
			"address", res.Address, "source", res.Source, "origin", res.Origin)
	}
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
	}
	return ""
}
