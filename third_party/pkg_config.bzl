"""pkg_config_repository: libraries installed on the system, as Bazel targets.

The generated repository holds one cc_library per target, in the package the
target's label names. The libraries' headers are in /usr/include, already on
the compiler's search path, so a target carries only the link line and the
preprocessor defines that `pkg-config` reports. This keeps the upstream
labels (e.g. @com_google_absl//absl/container:flat_hash_map) working against
Debian's prebuilt libraries: BUILD files are the same whether a dependency
comes from here or from its own source repository.

Example:

    pkg_config_repository(
        name = "com_github_google_benchmark",
        debian_packages = ["libbenchmark-dev"],
        targets = {
            ":benchmark": ["benchmark"],
            # Debian ships no benchmark_main.pc, so a literal flag.
            ":benchmark_main": ["-lbenchmark_main", "benchmark"],
        },
    )

`targets` maps a label inside the repository ("package:name", or ":name" for
the top package) to a list of items, taken in order: an item that starts
with "-" is a literal linker flag, anything else is a pkg-config module.
"""

def _pkg_config(rctx, tool, what, module):
    result = rctx.execute([tool, what, module])
    if result.return_code != 0:
        fail(("pkg-config cannot find '{module}' for @{repo}: {err}\n" +
              "Install {pkgs} (scripts/bootstrap.sh does).").format(
            module = module,
            repo = rctx.attr.name,
            err = result.stderr.strip(),
            pkgs = " ".join(rctx.attr.debian_packages),
        ))
    return [flag for flag in result.stdout.strip().split(" ") if flag]

def _cc_library(rctx, tool, name, items):
    linkopts = []
    defines = []
    for item in items:
        if item.startswith("-"):
            linkopts.append(item)
            continue
        linkopts.extend(_pkg_config(rctx, tool, "--libs", item))
        for flag in _pkg_config(rctx, tool, "--cflags", item):
            # Other flags (-I/usr/include, ...) are dropped: the headers are on
            # the default search path.
            if flag.startswith("-D") and flag[2:] not in defines:
                defines.append(flag[2:])
    return """
cc_library(
    name = "{name}",
    defines = {defines},
    linkopts = {linkopts},
)
""".format(name = name, defines = repr(defines), linkopts = repr(linkopts))

def _pkg_config_repository_impl(rctx):
    tool = rctx.which("pkg-config")
    if tool == None:
        fail("@{}: pkg-config is not installed. Install pkg-config {} (scripts/bootstrap.sh does).".format(
            rctx.attr.name,
            " ".join(rctx.attr.debian_packages),
        ))
    rctx.file("WORKSPACE", 'workspace(name = "{}")\n'.format(rctx.attr.name))

    packages = {}
    for label, items in rctx.attr.targets.items():
        package, _, name = label.rpartition(":")
        packages.setdefault(package, []).append(_cc_library(rctx, tool, name, items))
    for package, libraries in packages.items():
        rctx.file(
            (package + "/" if package else "") + "BUILD.bazel",
            "".join([
                "# Generated from pkg-config by @herd//third_party:pkg_config.bzl.\n\n",
                'package(default_visibility = ["//visibility:public"])\n',
            ] + libraries),
        )

pkg_config_repository = repository_rule(
    implementation = _pkg_config_repository_impl,
    attrs = {
        "targets": attr.string_list_dict(
            mandatory = True,
            doc = "label inside the repository -> pkg-config modules and linker flags",
        ),
        "debian_packages": attr.string_list(
            doc = "The Debian packages that provide the libraries, for error messages.",
        ),
    },
    environ = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"],
    # Re-run pkg-config when the Bazel server restarts, so that upgraded
    # packages are picked up.
    local = True,
)
