// Shared by the kernel families that reduce within a workgroup (norm.wgsl, reduce.wgsl); the
// pipeline cache prepends this file to theirs (WGSL has no include).

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

// Sum of `v` over the workgroup's 256 invocations (tree reduction in workgroup memory). Must be
// reached by every invocation; the final barrier lets a caller reduce again right away.
fn reduce(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
