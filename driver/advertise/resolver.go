// Package advertise resolves the host address that SSH users connect to: the
// override file first, then the instance's public IPv4 address from AWS
// instance metadata (IMDS), then optionally its local IPv4 address. The same
// AWS lookup also resolves the IPv6 address of the primary network
// interface. GCE and Azure metadata can be tried too, when Config.Clouds
// names them.
//
// The first two steps and the override path match CircleCI server's SSH
// rerun (https://circleci.com/docs/ssh-server/). The local-ipv4 fallback, the
// IPv6 lookup and the other clouds are additions.
package advertise

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Resolver resolves and caches the advertised address. It is safe for
// concurrent use, and it runs one resolution at a time.
type Resolver struct {
	cfg    Config
	logger hclog.Logger
	clouds []cloud // in the order of cfg.Clouds

	// transports are the HTTP transports of the clouds, kept to close their
	// idle connections.
	transports []*http.Transport

	openOverride openFile

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
	lastWarnings  map[string]bool
}

// NewResolver validates cfg and builds a Resolver with one long-lived HTTP
// client for each cloud in cfg.Clouds. It does no I/O.
func NewResolver(cfg Config) (*Resolver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	logger := cfg.Logger.Named("advertise")
	r := &Resolver{
		cfg:          cfg,
		logger:       logger,
		openOverride: openOS,
		resolving:    make(chan struct{}, 1),
	}

	for _, name := range cfg.Clouds {
		client, transport := newMetadataHTTPClient()
		r.transports = append(r.transports, transport)

		switch name {
		case CloudAWS:
			r.clouds = append(r.clouds, metadataSource{
				client:            newIMDSClient(cfg.IMDSEndpoint, client, logger),
				endpoint:          cfg.IMDSEndpoint,
				timeout:           cfg.IMDSTimeout,
				overrideFile:      cfg.OverrideFile,
				localIPv4Fallback: cfg.LocalIPv4Fallback,
			})
		case CloudGCE:
			r.clouds = append(r.clouds, newGCESource(cfg, client))
		case CloudAzure:
			r.clouds = append(r.clouds, newAzureSource(cfg, client))
		}
	}
	return r, nil
}

// Resolve runs the full resolution now and stores its result or error as the
// cached one. When ctx ends before the resolution does, the error is returned
// but not stored, so a caller's cancellation never becomes the cached outcome.
func (r *Resolver) Resolve(ctx context.Context) (Result, error) {
	res, _, err := r.ResolveTrace(ctx)
	return res, err
}

// ResolveTrace is Resolve that also returns the trace: one Step for each
// source, in the order considered, with skipped sources included. On
// success the trace is also res.Trace. On failure ResolveTrace is the only
// way to get the trace, because the error carries none. The trace is nil
// when ctx ended while the call waited for another resolution.
func (r *Resolver) ResolveTrace(ctx context.Context) (res Result, trace []Step, err error) {
	if err := r.acquire(ctx); err != nil {
		return Result{}, nil, err
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
	res, _, err := r.resolveAndStore(ctx)
	return res, err
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

func (r *Resolver) resolveAndStore(ctx context.Context) (Result, []Step, error) {
	state, run, err := r.resolve(ctx)
	if err != nil && ctx.Err() != nil {
		return Result{}, run.steps, err
	}

	r.store(state, run, err)
	if err != nil {
		return Result{}, run.steps, err
	}
	return run.result, run.steps, nil
}

// closeIdleConnections closes the kept-alive connections to every metadata
// service. Benchmarks that build many Resolvers call it.
func (r *Resolver) closeIdleConnections() {
	for _, transport := range r.transports {
		transport.CloseIdleConnections()
	}
}
