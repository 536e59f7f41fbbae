# Warnings for every C target; -Wconversion only where int8/int32 truncation bugs hide.
set(DR_C_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wpointer-arith -Wcast-qual -Wdouble-promotion -Wvla -Wformat=2 -Wundef)
set(DR_CXX_WARNINGS -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 -Wundef)

function(dr_target_warnings target)
    get_target_property(type ${target} TYPE)
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:C>:${DR_C_WARNINGS}>
        $<$<COMPILE_LANGUAGE:CXX>:${DR_CXX_WARNINGS}>)
    if(DR_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()

# kernels/ and models/: int8/int32 narrowing must be spelled out.
function(dr_target_strict_conversions target)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Wconversion -Wsign-conversion>)
endfunction()
