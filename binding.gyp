{
  "targets": [
    {
      "target_name": "soup_core",
      "sources": [
        "native/core/thread_pool.cc",
        "native/core/interp.cc",
        "native/core/interp_scalar.cc",
        "native/core/interp_avx2.cc",
        "native/core/interp_avx512.cc",
        "native/core/interp_avx512bf16.cc",
        "native/core/mapped_file.cc",
        "native/core/merge_files.cc",
        "native/addon/core/addon_core.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O3", "-fexceptions", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-maybe-uninitialized"],
      "ldflags": ["-Wl,-z,now", "-pthread"]
    }
  ]
}
