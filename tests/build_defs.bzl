"""herd_cc_test: a GoogleTest test of herd, with the deps every test has.

herd_cc_tests: one herd_cc_test per source file.
"""

load("@rules_cc//cc:defs.bzl", "cc_test")

# What every test links: herd, GoogleTest with Google Mock and its main(),
# absl/synchronization, and the shared helpers in tests/ (//tests:testing).
#
# Under ThreadSanitizer, prefer std::latch or std::promise to
# absl::Notification and absl::Mutex in tests: Debian's Abseil is prebuilt
# without -fsanitize=thread, so TSan does not see a Notify() that wakes a
# blocked WaitForNotification(), and reports the data handed over as a race.
HERD_TEST_DEPS = [
    "//:herd",
    "//tests:testing",
    "@com_google_absl//absl/synchronization",
    "@com_google_googletest//:gtest",
    "@com_google_googletest//:gtest_main",
]

def herd_cc_test(name, srcs = None, deps = [], data = [], size = None, tags = [], **kwargs):
    """A cc_test named `name`, built from `name`.cc unless `srcs` says otherwise.

    A test whose name ends with `_stress_test` is `large` (15-minute timeout,
    longer under the sanitizer configs), tagged `stress`, and reserves both
    CPUs of a 2-core machine (`cpu:2`), so that it does not compete with
    another test for the cores its threads need.
    """
    stress = name.endswith("_stress_test")
    cc_test(
        name = name,
        srcs = srcs or [name + ".cc"],
        deps = HERD_TEST_DEPS + [d for d in deps if d not in HERD_TEST_DEPS],
        # Read by --config=tsan (TSAN_OPTIONS=suppressions=...).
        data = data + ["//third_party:tsan.supp"],
        size = size or ("large" if stress else "small"),
        tags = tags + (["stress", "cpu:2"] if stress else []),
        **kwargs
    )

def herd_cc_tests(srcs, overrides = {}):
    """One herd_cc_test per source `<name>.cc`, given overrides[name] as arguments."""
    for src in srcs:
        name = src[:-len(".cc")]
        herd_cc_test(name = name, srcs = [src], **overrides.get(name, {}))
