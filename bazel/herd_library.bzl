"""herd_library: one component of herd, and a check of each of its headers.

A component's headers are in include/herd/ and compile against exactly the
dependencies it lists. Most of herd is header-only templates, so compiling a
component's own sources does not show a header that includes something the
component does not depend on. herd_library therefore also defines
`<name>_header_check`: one translation unit per header, each including only
that header, built against `<name>` alone. A header that is not
self-contained, or that reaches past the component's dependencies (the core
including a guard, the share including the cache), fails that build: with
strip_include_prefix each target sees only the headers of its transitive
dependencies.

Headers named *_impl.h or *-inl.h hold the definitions their public header
includes at its end; they are checked through it, not alone.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def _checked_alone(hdr):
    return not (hdr.endswith("_impl.h") or hdr.endswith("-inl.h"))

def herd_library(name, hdrs, srcs = [], deps = [], **kwargs):
    """A cc_library for a component of herd, plus `<name>_header_check`.

    Args:
      name: the target, e.g. "share" for //:share.
      hdrs: its headers, under include/ (included as "herd/...").
      srcs: its sources (lib/*.cc).
      deps: exactly the targets its headers and sources include.
      **kwargs: passed to the cc_library.
    """
    cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        # Not `includes`: that hands headers to dependents with -isystem, and
        # clang then hides -Wthread-safety warnings about herd's annotated
        # types.
        strip_include_prefix = "include",
        deps = deps,
        **kwargs
    )

    checks = []
    for hdr in hdrs:
        if not hdr.startswith("include/"):
            fail("herd_library(%s): %s is not under include/" % (name, hdr))
        if not _checked_alone(hdr):
            continue
        include = hdr[len("include/"):]
        out = "_header_check/%s/%s.cc" % (name, include)
        native.genrule(
            name = "_header_check_%s_%s" % (name, include.replace("/", "_").replace(".", "_")),
            outs = [out],
            cmd = "echo '#include \"%s\"  // and nothing else' > $@" % include,
            visibility = ["//visibility:private"],
        )
        checks.append(out)

    cc_library(
        name = name + "_header_check",
        testonly = True,
        srcs = checks,
        deps = [":" + name],
        visibility = ["//visibility:private"],
    )
