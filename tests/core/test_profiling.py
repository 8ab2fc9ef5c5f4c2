from core.profiling import category_table, kernel_category


def test_kernels_are_sorted_into_kinds_by_name():
    assert kernel_category("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16") == "attention"
    assert kernel_category("nvjet_sm90_tst_192x192_64x4_2x1_v_bz_coopB_TNN") == "matmul"
    assert kernel_category("triton_tem_fused_mm_0") == "matmul"  # an autotuned GEMM template
    assert kernel_category("triton_red_fused__log_softmax__to_copy_2").startswith("fused")
    assert kernel_category("void at::native::reduce_kernel<128, 4>") == "other"


def test_category_table_sums_time_per_step_and_shares():
    table = category_table([("nvjet_a", 3000.0), ("nvjet_b", 1000.0), ("triton_poi_x", 4000.0)], steps=2, total=8000.0)
    rows = {r.split("|")[1].strip(): r for r in table.splitlines()[2:]}
    assert "| 2 | 2.000 | 50.0% |" in rows["matmul"]
    assert "| 1 | 2.000 | 50.0% |" in rows["fused elementwise / reduction (Triton)"]
