// Package advertise resolves the host address that SSH users connect to: the
// override file first, then the instance's public IPv4 address from AWS
// instance metadata (IMDS), then optionally its local IPv4 address.
//
// The first two steps and the override path match CircleCI server's SSH
// rerun (https://circleci.com/docs/ssh-server/). The local-ipv4 fallback is
// an addition for instances in private subnets.
package advertise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Source names where an address came from.
type Source string

const (
	SourceOverrideFile Source = "override-file"
	SourceIMDSPublic   Source = "imds-public"
	SourceIMDSLocal    Source = "imds-local"
)

// Result is one resolved address.
type Result struct {
	Address    netip.Addr
	Source     Source
	Origin     string // the override file path or the metadata URL
	ResolvedAt time.Time
}

// Resolver resolves and caches the advertised address. It is safe for
// concurrent use, and it runs one resolution at a time.
type Resolver struct {
	cfg      Config
	logger   hclog.Logger
	metadata metadataSource

	// resolving is a one-slot semaphore held for a whole resolution. It is a
	// channel so that a caller waiting for it can give up when its context
	// ends.
	resolving chan struct{}

	mu            sync.Mutex
	cached        bool
	result        Result
	err           error
	checkedAt     time.Time // when the cached result or error was produced
	overrideState fileState // the override file when the cached outcome was produced
	lastGood      Result    // last successful result, kept across failures
	lastErrText   string    // text of the last failure, "" after a success
}

// NewResolver validates cfg and builds a Resolver with one long-lived IMDS
// client. It does no I/O.
func NewResolver(cfg Config) (*Resolver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	logger := cfg.Logger.Named("advertise")
	return &Resolver{
		cfg:    cfg,
		logger: logger,
		metadata: metadataSource{
			client:       newIMDSClient(cfg.IMDSEndpoint, logger),
			endpoint:     cfg.IMDSEndpoint,
			timeout:      cfg.IMDSTimeout,
			overrideFile: cfg.OverrideFile,
		},
		resolving: make(chan struct{}, 1),
	}, nil
}

// Resolve runs the full resolution now and stores its result or error as the
// cached one. When ctx ends before the resolution does, the error is returned
// but not stored, so a caller's cancellation never becomes the cached outcome.
func (r *Resolver) Resolve(ctx context.Context) (Result, error) {
	if err := r.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer r.release()

	return r.resolveAndStore(ctx)
}

// Current returns the cached result or error while it is younger than maxAge
// and the override file's existence, modification time and size are
// unchanged since it was produced. Otherwise it calls Resolve. The freshness
// check stats the override file but never contacts instance metadata.
//
// A cached error is returned under the same rule, so Current does not retry
// a failing metadata service until maxAge has passed or the override file
// changed. Writing the override file, which is the fix that errors suggest,
// takes effect at once.
func (r *Resolver) Current(ctx context.Context, maxAge time.Duration) (Result, error) {
	if res, err, ok := r.fresh(maxAge); ok {
		return res, err
	}

	if err := r.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer r.release()

	// Another caller may have resolved while this one waited.
	if res, err, ok := r.fresh(maxAge); ok {
		return res, err
	}
	return r.resolveAndStore(ctx)
}

// Cached returns the last stored result or error without doing any I/O. ok is
// false before the first stored resolution.
func (r *Resolver) Cached() (res Result, err error, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()

	return r.result, r.err, r.cached
}

func (r *Resolver) acquire(ctx context.Context) error {
	select {
	case r.resolving <- struct{}{}:
		return nil
	default:
	}

	select {
	case r.resolving <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another resolution of the advertised address: %w", ctx.Err())
	}
}

func (r *Resolver) release() {
	<-r.resolving
}

// fresh returns the cached outcome and true when Current may return it.
func (r *Resolver) fresh(maxAge time.Duration) (Result, error, bool) {
	r.mu.Lock()
	cached, res, err := r.cached, r.result, r.err
	checkedAt, overrideState := r.checkedAt, r.overrideState
	r.mu.Unlock()

	if !cached || r.cfg.Now().Sub(checkedAt) >= maxAge {
		return Result{}, nil, false
	}

	state, statErr := statOverride(r.cfg.OverrideFile)
	if statErr != nil || !state.equal(overrideState) {
		return Result{}, nil, false
	}
	return res, err, true
}

func (r *Resolver) resolveAndStore(ctx context.Context) (Result, error) {
	state, res, err := r.resolve(ctx)
	if err != nil && ctx.Err() != nil {
		return Result{}, err
	}

	r.store(state, res, err)
	return res, err
}

// resolve runs the override file, public-ipv4, local-ipv4 order and returns
// the override file state it saw first.
func (r *Resolver) resolve(ctx context.Context) (fileState, Result, error) {
	path := r.cfg.OverrideFile

	state, err := statOverride(path)
	if err != nil {
		return state, Result{}, err
	}

	if state.exists {
		addr, err := readOverride(path)
		switch {
		case err == nil:
			return state, r.newResult(addr, SourceOverrideFile, path), nil
		case errors.Is(err, fs.ErrNotExist):
			// The file was deleted after the stat, so treat it as missing.
			state = fileState{}
		default:
			// An invalid override never falls through to metadata, because
			// the operator meant to replace it.
			return state, Result{}, err
		}
	}

	res, err := r.resolveMetadata(ctx)
	return state, res, err
}

// resolveMetadata requests public-ipv4 and, after a 404, local-ipv4, both
// within one IMDSTimeout.
func (r *Resolver) resolveMetadata(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.IMDSTimeout)
	defer cancel()

	addr, err := r.metadata.address(ctx, metadataPublicIPv4)
	if err == nil {
		return r.newResult(addr, SourceIMDSPublic, r.metadata.url(metadataPublicIPv4)), nil
	}
	if !isNotFound(err) {
		return Result{}, err
	}

	if !r.cfg.LocalIPv4Fallback {
		return Result{}, fmt.Errorf("%w; the instance has no public IPv4 address, so write the address to advertise to the override file %s or enable the local-ipv4 fallback", err, r.cfg.OverrideFile)
	}

	addr, err = r.metadata.address(ctx, metadataLocalIPv4)
	if err != nil {
		return Result{}, fmt.Errorf("%w (the fallback after public-ipv4 returned 404)", err)
	}
	return r.newResult(addr, SourceIMDSLocal, r.metadata.url(metadataLocalIPv4)), nil
}

func (r *Resolver) newResult(addr netip.Addr, source Source, origin string) Result {
	return Result{Address: addr, Source: source, Origin: origin, ResolvedAt: r.cfg.Now()}
}
