"""The linear case of §4: f_θ(x) = A x, g_ψ(z) = B z, teacher C y."""
