# The only place -m flags appear.  ISA files get their flags per source (as XNNPACK does);
# everything else builds for the baseline, so one binary runs on every host, and the
# dispatch table (kernels/dispatch.c) picks the best path at start-up.
set(DR_ARCH_X86 OFF)
set(DR_ARCH_ARM64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
    set(DR_ARCH_X86 ON)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(DR_ARCH_ARM64 ON)
endif()

set(DR_FLAGS_AVX2 -mavx2 -mfma -mf16c)
set(DR_FLAGS_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq)
set(DR_FLAGS_AVX512VNNI ${DR_FLAGS_AVX512} -mavx512vnni)
set(DR_FLAGS_NEONDOT -march=armv8.2-a+dotprod)

function(dr_isa_sources isa)
    if(isa STREQUAL "AVX2")
        set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "${DR_FLAGS_AVX2}")
    elseif(isa STREQUAL "AVX512")
        set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "${DR_FLAGS_AVX512}")
    elseif(isa STREQUAL "NEON")
        # AArch64's baseline: Advanced SIMD needs no flag.
    elseif(isa STREQUAL "NEONDOT")
        set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "${DR_FLAGS_NEONDOT}")
    elseif(isa STREQUAL "AVX512VNNI")
        set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "${DR_FLAGS_AVX512VNNI}")
    else()
        message(FATAL_ERROR "dr_isa_sources: unknown ISA ${isa}")
    endif()
endfunction()
