{
  "targets": [
    {
      "target_name": "overlapped_uring",
      "sources": ["src/addon.c", "src/ring.c", "src/sockets.c", "src/descriptors.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "libraries": ["<!(node liburing-link.mjs)"],
      "conditions": [
        ["'<!(echo $OVERLAPPED_ASAN)'=='1'", {
          "cflags_c": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
