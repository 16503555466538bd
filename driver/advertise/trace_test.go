package advertise

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestResolveTrace_DefaultOrder(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1\n"}
	resolver := newTestResolver(t, fake, nil)
	path := resolver.cfg.OverrideFile

	res, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	metadata := fake.URL() + "/latest/meta-data/"
	want := []Step{
		{Source: SourceOverrideFile, Origin: path, Outcome: OutcomeNotFound, Reason: "the file does not exist, so metadata is used"},
		{Source: SourceIMDSPublic, Family: FamilyIPv4, Origin: metadata + "public-ipv4", Value: `"198.51.100.1\n"`, Outcome: OutcomeAccepted, Reason: "the override file does not exist"},
		{Source: SourceIMDSLocal, Family: FamilyIPv4, Origin: metadata + "local-ipv4", Outcome: OutcomeSkipped, Reason: "public-ipv4 returned an address"},
		{Source: SourceIMDSIPv6, Family: FamilyIPv6, Origin: metadata + "mac", Outcome: OutcomeNotFound},
	}
	if len(trace) != len(want) {
		t.Fatalf("trace has %d steps, want %d:\n%s", len(trace), len(want), formatTrace(trace))
	}
	for i := range want {
		got := trace[i]
		if got.Outcome == OutcomeSkipped && got.Duration != 0 {
			t.Errorf("step %d (%s) is skipped but took %s, want 0", i, got.Source, got.Duration)
		}
		if got.Outcome != OutcomeSkipped && got.Duration <= 0 {
			t.Errorf("step %d (%s) took %s, want a positive duration", i, got.Source, got.Duration)
		}
		got.Duration = 0
		if want[i].Reason == "" {
			// The reason of the 404 is the error text, which other tests check.
			got.Reason = ""
		}
		if got != want[i] {
			t.Errorf("step %d = %+v\nwant     %+v", i, got, want[i])
		}
	}
	if !reflect.DeepEqual(res.Trace, trace) {
		t.Errorf("Result.Trace differs from the returned trace:\n%s\nwant\n%s", formatTrace(res.Trace), formatTrace(trace))
	}
}

func TestResolveTrace_FailureCarriesTrace(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "garbage"}
	resolver := newTestResolver(t, fake, nil)

	res, trace, err := resolver.ResolveTrace(context.Background())

	assertErrorContains(t, err, `"garbage" is not an IP address`)
	if res.Trace != nil {
		t.Errorf("Result.Trace = %v, want nil on failure", res.Trace)
	}
	public := findStep(t, trace, SourceIMDSPublic)
	if public.Outcome != OutcomeRejected {
		t.Errorf("imds-public outcome = %q, want %q", public.Outcome, OutcomeRejected)
	}
	if public.Value != `"garbage"` {
		t.Errorf("imds-public value = %s, want \"garbage\"", public.Value)
	}
	if public.Reason != err.Error() {
		t.Errorf("imds-public reason = %q\nwant the error %q", public.Reason, err)
	}
	local := findStep(t, trace, SourceIMDSLocal)
	if local.Outcome != OutcomeSkipped || local.Reason != "public-ipv4 did not return 404, and only a 404 from it leads to local-ipv4" {
		t.Errorf("imds-local step = %+v, want skipped because only a 404 leads to local-ipv4", local)
	}
}

func TestResolveTrace_FallbackOffIsSkipped(t *testing.T) {
	fake := newFakeIMDS(t)
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.LocalIPv4Fallback = false
	})

	_, trace, err := resolver.ResolveTrace(context.Background())

	assertErrorContains(t, err, "enable the local-ipv4 fallback")
	local := findStep(t, trace, SourceIMDSLocal)
	if local.Outcome != OutcomeSkipped || local.Reason != "the local-ipv4 fallback is off" {
		t.Errorf("imds-local step = %+v, want skipped because the fallback is off", local)
	}
}

func TestResolveTrace_OverrideSkipsEverySource(t *testing.T) {
	fake := newFakeIMDS(t)
	resolver := newTestResolver(t, fake, func(cfg *Config) {
		cfg.Clouds = []string{CloudAWS, CloudGCE, CloudAzure}
	})
	writeOverride(t, resolver, "203.0.113.7\n")

	_, trace, err := resolver.ResolveTrace(context.Background())
	if err != nil {
		t.Fatalf("ResolveTrace: %v", err)
	}

	if got := sourcesOf(trace); got != "override-file imds-public imds-local imds-ipv6 gce-external azure-public" {
		t.Errorf("trace sources = %s, want the override file and every configured source", got)
	}
	for _, step := range trace[1:] {
		if step.Outcome != OutcomeSkipped || step.Reason != "the override file exists, so no other source is tried" {
			t.Errorf("%s step = %+v, want skipped because the override file exists", step.Source, step)
		}
	}
	override := trace[0]
	if override.Outcome != OutcomeAccepted || override.Family != FamilyIPv4 || override.Value != `"203.0.113.7\n"` {
		t.Errorf("override-file step = %+v, want the accepted IPv4 value", override)
	}
}

func TestResolveTrace_LongValueIsCut(t *testing.T) {
	fake := newFakeIMDS(t)
	resolver := newTestResolver(t, fake, nil)
	writeOverride(t, resolver, strings.Repeat("a", 200))

	_, trace, err := resolver.ResolveTrace(context.Background())

	assertErrorContains(t, err, "is longer than 64 bytes")
	step := findStep(t, trace, SourceOverrideFile)
	if want := `"` + strings.Repeat("a", 24) + `..."`; step.Value != want {
		t.Errorf("override-file value = %s, want %s", step.Value, want)
	}
}

// Current returns the trace of the resolution that produced the cached
// result.
func TestCurrent_KeepsTrace(t *testing.T) {
	fake := newFakeIMDS(t)
	fake.replies["public-ipv4"] = metadataReply{status: http.StatusOK, body: "198.51.100.1"}
	resolver := newTestResolver(t, fake, nil)

	first, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("first Current: %v", err)
	}
	second, err := resolver.Current(context.Background(), time.Hour)
	if err != nil {
		t.Fatalf("second Current: %v", err)
	}

	if len(second.Trace) == 0 || !reflect.DeepEqual(second.Trace, first.Trace) {
		t.Errorf("cached Trace =\n%s\nwant the first resolution's\n%s", formatTrace(second.Trace), formatTrace(first.Trace))
	}
}
