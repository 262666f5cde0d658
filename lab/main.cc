// Copyright 2026 The herd Authors.
//
// herd-stampede: what a cache stampede does to a real SQLite database, and
// how herd's defences compare. See lab/stampede_lab.h, or run with --help.
//
//   bazel run //lab:herd-stampede -- --help

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lab/lab_internal.h"
#include "lab/stampede_lab.h"

namespace {

std::atomic<bool> stop_requested{false};

// Ctrl-C: the run stops and prints what it measured. A second Ctrl-C kills
// the process at once (the handler is reset to the default).
extern "C" void OnSignal(int signal) {
  stop_requested.store(true);
  std::signal(signal, SIG_DFL);
}

}  // namespace

int main(int argc, char** argv) {
  static_assert(std::atomic<bool>::is_always_lock_free);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  const std::vector<std::string> args(argv + 1, argv + argc);
  // --processes=P runs this program again as P workers (lab/fleet_lab.cc).
  if (const char* assignment = std::getenv("HERD_STAMPEDE_WORKER")) {
    return herd::lab::internal::WorkerMain(args, assignment, &stop_requested);
  }
  return herd::lab::Main(args, &stop_requested, isatty(STDERR_FILENO) != 0,
                         stdout, stderr);
}
