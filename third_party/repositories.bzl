"""herd's external repositories, for a WORKSPACE.

herd_system_dependencies() wraps Debian's prebuilt Abseil, GoogleTest,
Google Benchmark, SQLite and nlohmann-json under their upstream repository
names and labels,
so that //:herd and its tests name the same targets a monorepo with source
copies of these repositories has. It skips any repository already defined,
so a WORKSPACE may define some of them itself first.

herd_coverage_tools() defines @remote_coverage_tools, which `bazel test`
needs even when coverage is off.
"""

load(":pkg_config.bzl", "pkg_config_repository")

def _absl_targets():
    # Upstream label -> pkg-config module of Debian's libabsl-dev (20220623).
    # Only the upstream names that have a .pc file there are listed; add more
    # here as herd needs them.
    packages = {
        "algorithm": ["algorithm", "container=absl_algorithm_container"],
        "base": ["base", "config", "core_headers", "dynamic_annotations", "endian", "log_severity", "prefetch"],
        "cleanup": ["cleanup"],
        "container": ["btree", "fixed_array", "flat_hash_map", "flat_hash_set", "inlined_vector", "node_hash_map", "node_hash_set"],
        "debugging": ["failure_signal_handler", "leak_check", "stacktrace", "symbolize"],
        "flags": ["commandlineflag=absl_flags_commandlineflag", "flag=absl_flags", "parse=absl_flags_parse", "usage=absl_flags_usage", "marshalling=absl_flags_marshalling", "reflection=absl_flags_reflection"],
        "functional": ["any_invocable", "bind_front", "function_ref"],
        "hash": ["hash"],
        "memory": ["memory"],
        "meta": ["type_traits"],
        "numeric": ["bits", "int128", "representation=absl_numeric_representation"],
        "random": ["random=absl_random_random", "bit_gen_ref=absl_random_bit_gen_ref", "distributions=absl_random_distributions", "seed_gen_exception=absl_random_seed_gen_exception", "seed_sequences=absl_random_seed_sequences"],
        "status": ["status", "statusor"],
        "strings": ["cord", "str_format", "strings"],
        "synchronization": ["synchronization"],
        "time": ["time"],
        "types": ["any", "bad_any_cast", "bad_optional_access", "bad_variant_access", "compare", "optional", "span", "variant"],
        "utility": ["utility"],
    }
    targets = {}
    for package, names in packages.items():
        for entry in names:
            name, _, module = entry.partition("=")
            targets["absl/{}:{}".format(package, name)] = [module or "absl_" + name]
    return targets

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def herd_system_dependencies():
    """Abseil, GoogleTest, Google Benchmark, SQLite, nlohmann-json from the system."""
    _maybe(
        pkg_config_repository,
        name = "com_google_absl",
        debian_packages = ["libabsl-dev"],
        targets = _absl_targets(),
    )

    # Upstream's :gtest includes Google Mock, and :gtest_main is gmock_main.cc.
    _maybe(
        pkg_config_repository,
        name = "com_google_googletest",
        debian_packages = ["libgtest-dev", "libgmock-dev"],
        targets = {
            ":gtest": ["gmock"],
            ":gtest_main": ["gmock_main"],
        },
    )
    _maybe(
        pkg_config_repository,
        name = "com_github_google_benchmark",
        debian_packages = ["libbenchmark-dev"],
        targets = {
            ":benchmark": ["benchmark", "-pthread"],
            # Debian ships libbenchmark_main.a but no benchmark_main.pc.
            ":benchmark_main": ["-lbenchmark_main", "benchmark", "-pthread"],
        },
    )

    # The name and label of the sqlite3 module in the Bazel Central Registry.
    _maybe(
        pkg_config_repository,
        name = "sqlite3",
        debian_packages = ["libsqlite3-dev"],
        targets = {":sqlite3": ["sqlite3"]},
    )

    # Header-only; the lab's JSON. The name and label of the nlohmann_json
    # module in the Bazel Central Registry.
    _maybe(
        pkg_config_repository,
        name = "nlohmann_json",
        debian_packages = ["nlohmann-json3-dev"],
        targets = {":json": ["nlohmann_json"]},
    )

def _coverage_tools_impl(rctx):
    if rctx.os.environ.get("HERD_BAZEL_OFFLINE", "") == "1":
        # Enough for `bazel test`; `bazel coverage` is unavailable.
        rctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
        rctx.file("BUILD.bazel", """# Stub: see @herd//third_party:repositories.bzl.
filegroup(name = "coverage_report_generator", visibility = ["//visibility:public"])
filegroup(name = "lcov_merger", visibility = ["//visibility:public"])
""")
    else:
        # What Bazel 4.2.3 itself fetches (its coverage.WORKSPACE).
        rctx.download_and_extract(
            url = "https://mirror.bazel.build/bazel_coverage_output_generator/releases/coverage_output_generator-v2.5.zip",
            sha256 = "cd14f1cb4559e4723e63b7e7b06d09fcc3bd7ba58d03f354cdff1439bd936a7d",
        )

_coverage_tools = repository_rule(
    implementation = _coverage_tools_impl,
    environ = ["HERD_BAZEL_OFFLINE"],
)

def herd_coverage_tools():
    """@remote_coverage_tools: a stub offline (.bazelrc.debian), else the real one."""
    _maybe(_coverage_tools, name = "remote_coverage_tools")
