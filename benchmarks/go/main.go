// Copyright 2026 The herd Authors.
//
// The Go peer of benchmarks/share_benchmark.cc: cases (a) to (c) against
// golang.org/x/sync/singleflight, printed as one JSON object on stdout for
// benchmarks/run.py to put beside herd's figures.
//
//	Go_LeaderPath_String    one goroutine, each call the only caller of its
//	                        key ("user:00000042", 4096 keys), trivial fn
//	Go_LeaderPath_Int64     the same with an int64 id: singleflight keys are
//	                        strings, so the key is strconv.FormatInt(id)
//	Go_HotKey/threads:T     one key from T goroutines (GOMAXPROCS=2)
//	Go_Stampede/N           N goroutines released together on one key whose
//	                        fn waits until every caller has started its call
//	                        (singleflight cannot say who has joined), then
//	                        takes 1 ms; the time from the value being set to
//	                        the last waiter returning
//
// Built from Debian's golang-go and golang-golang-x-sync-dev (see go.mod):
//
//	cd benchmarks/go && GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"
)

// A boxed value made once: returning it allocates nothing, so the leader
// path pays only for singleflight itself.
var result interface{} = int64(7)

type Result struct {
	Name        string             `json:"name"`
	NsPerOp     float64            `json:"ns_per_op,omitempty"`
	AllocsPerOp int64              `json:"allocs_per_op"`
	BytesPerOp  int64              `json:"bytes_per_op"`
	Iterations  int                `json:"iterations,omitempty"`
	Threads     int                `json:"threads,omitempty"`
	Counters    map[string]float64 `json:"counters,omitempty"`
}

func stringKeys() []string {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%08d", i)
	}
	return keys
}

func fromBenchmark(name string, r testing.BenchmarkResult) Result {
	return Result{
		Name:        name,
		NsPerOp:     float64(r.T.Nanoseconds()) / float64(r.N),
		AllocsPerOp: r.AllocsPerOp(),
		BytesPerOp:  r.AllocedBytesPerOp(),
		Iterations:  r.N,
	}
}

func leaderPathString() Result {
	keys := stringKeys()
	r := testing.Benchmark(func(b *testing.B) {
		var g singleflight.Group
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			g.Do(keys[i&4095], func() (interface{}, error) { return result, nil })
		}
	})
	return fromBenchmark("Go_LeaderPath_String", r)
}

func leaderPathInt64() Result {
	r := testing.Benchmark(func(b *testing.B) {
		var g singleflight.Group
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			id := int64(i) + 1000000
			g.Do(strconv.FormatInt(id, 10), func() (interface{}, error) { return result, nil })
		}
	})
	return fromBenchmark("Go_LeaderPath_Int64", r)
}

func hotKey(threads int) Result {
	var executions, calls int64
	r := testing.Benchmark(func(b *testing.B) {
		var g singleflight.Group
		atomic.StoreInt64(&executions, 0)
		atomic.StoreInt64(&calls, int64(b.N))
		fn := func() (interface{}, error) {
			atomic.AddInt64(&executions, 1)
			return result, nil
		}
		b.ReportAllocs()
		if threads == 1 {
			for i := 0; i < b.N; i++ {
				g.Do("user:00000042", fn)
			}
			return
		}
		// RunParallel starts parallelism*GOMAXPROCS goroutines.
		b.SetParallelism((threads + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.Do("user:00000042", fn)
			}
		})
	})
	res := fromBenchmark(fmt.Sprintf("Go_HotKey/threads:%d", threads), r)
	res.Threads = threads
	res.Counters = map[string]float64{
		"exec_fraction":    float64(atomic.LoadInt64(&executions)) / float64(atomic.LoadInt64(&calls)),
		"calls_per_second": 1e9 / res.NsPerOp,
	}
	return res
}

func stampede(n, rounds int) Result {
	var g singleflight.Group
	wakes := make([]float64, 0, rounds)
	totalExecutions := 0
	for r := 0; r < rounds; r++ {
		var arrived, executions int32
		var setAt time.Time
		returned := make([]time.Time, n)
		executed := make([]bool, n)
		start := make(chan struct{})
		var done sync.WaitGroup
		done.Add(n)
		for i := 0; i < n; i++ {
			go func(i int) {
				defer done.Done()
				<-start
				atomic.AddInt32(&arrived, 1)
				ran := false
				g.Do("hot", func() (interface{}, error) {
					ran = true
					atomic.AddInt32(&executions, 1)
					for atomic.LoadInt32(&arrived) < int32(n) {
						time.Sleep(50 * time.Microsecond)
					}
					time.Sleep(time.Millisecond)
					setAt = time.Now()
					return result, nil
				})
				returned[i] = time.Now()
				executed[i] = ran
			}(i)
		}
		close(start)
		done.Wait()
		last := setAt
		for i := range returned {
			if !executed[i] && returned[i].After(last) {
				last = returned[i]
			}
		}
		wakes = append(wakes, float64(last.Sub(setAt).Nanoseconds()))
		totalExecutions += int(executions)
	}
	sorted := append([]float64(nil), wakes...)
	sort.Float64s(sorted)
	mean := 0.0
	for _, w := range wakes {
		mean += w
	}
	mean /= float64(len(wakes))
	return Result{
		Name:       fmt.Sprintf("Go_Stampede/%d", n),
		NsPerOp:    mean,
		Iterations: rounds,
		Threads:    n,
		Counters: map[string]float64{
			"executions":  float64(totalExecutions) / float64(rounds),
			"wake_p50_us": sorted[len(sorted)/2] / 1e3,
			"wake_max_us": sorted[len(sorted)-1] / 1e3,
		},
	}
}

func main() {
	rounds := flag.Int("stampede_rounds", 60, "rounds per stampede size")
	flag.Parse()
	out := struct {
		GoVersion  string   `json:"go_version"`
		GOMAXPROCS int      `json:"gomaxprocs"`
		Results    []Result `json:"results"`
	}{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	out.Results = append(out.Results, leaderPathString(), leaderPathInt64(),
		hotKey(1), hotKey(2))
	for _, n := range []int{8, 64, 256} {
		out.Results = append(out.Results, stampede(n, *rounds))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
