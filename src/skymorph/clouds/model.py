"""A conditional generative model of a target point cloud given a source cloud (Luo & Hu 2021 style):
a PointNet encoder summarises the source cloud (and its mass in the cube) in a latent vector z; a
per-point velocity field v(x, t, z) (Luo & Hu's context-gated ConcatSquash layers) carries Gaussian noise to target points by flow matching
(rectified-flow path x_t = (1 - t) x_0 + t x_1, Lipman+23), so target points are drawn independently
given z: any number of them, without retraining. A head on z predicts log10 of the target mass in the
cube (as its ratio to the source's), so every drawn point carries M / n. Positions are radially stretched (:func:`stretch`) and
all features standardised with the train split's moments before the networks see them.
"""
from __future__ import annotations


import torch
from torch import nn

from ..models.unet import time_features


#: Core radius of the radial stretch (units of the half-width): the flow works in coordinates u
#: with |u| = asinh(r / STRETCH) along the same direction, which opens up the dense centre of a
#: galaxy (its cusp spans a few per cent of the cube) without touching the outskirts much.
STRETCH = 0.05


def stretch(points: torch.Tensor) -> torch.Tensor:
    """Points with positions (first three columns) mapped to u = x asinh(r / STRETCH) / r."""
    x = points[..., :3]
    r = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.cat([x * torch.asinh(r / STRETCH) / r, points[..., 3:]], dim=-1)


def unstretch(points: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`stretch`: x = u STRETCH sinh(|u|) / |u|."""
    u = points[..., :3]
    q = u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.cat([u * STRETCH * torch.sinh(q) / q, points[..., 3:]], dim=-1)


def _mlp(sizes: list[int], last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ConcatSquash(nn.Module):
    """Luo & Hu's context-gated linear layer: Linear(x) * sigmoid(A ctx) + B ctx."""

    def __init__(self, cin: int, cout: int, ctx: int):
        super().__init__()
        self.lin, self.gate, self.bias = nn.Linear(cin, cout), nn.Linear(ctx, cout), nn.Linear(ctx, cout, bias=False)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * torch.sigmoid(self.gate(ctx)) + self.bias(ctx)


def random_rotations(n: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """(n, 3, 3) rotations uniform on SO(3) (QR of Gaussian matrices, signs fixed, det +1)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    det = torch.det(q)
    return q * torch.stack([torch.ones_like(det), torch.ones_like(det), det], 1)[:, None, :]


def rotate(points: torch.Tensor, rot: torch.Tensor, vector_blocks: int) -> torch.Tensor:
    """Points (B, n, F) with their first ``vector_blocks`` triples (positions, velocities) rotated by (B, 3, 3)."""
    parts = [points[..., 3 * i:3 * i + 3] @ rot.transpose(1, 2) for i in range(vector_blocks)]
    return torch.cat([*parts, points[..., 3 * vector_blocks:]], dim=-1)


class CloudFlow(nn.Module):
    """Encoder of (B, n_in, F_in) source clouds and flow decoder of (B, n, F_out) target points.

    ``moments``: buffers of the train split (mean and std per feature of each side, mean and std of
    log10 mass in the cube of each side), set by :meth:`set_moments`."""

    def __init__(self, in_features: int, out_features: int, width: int = 128, latent: int = 128):
        super().__init__()
        self.in_features, self.out_features, self.latent = in_features, out_features, latent
        self.point = _mlp([in_features, width, width, 2 * latent], last_act=True)
        self.pool = _mlp([4 * latent + 1, 2 * latent, latent])
        self.mass_head = nn.Linear(latent, 1)
        sizes = [out_features, 2 * width, 2 * width, 2 * width, out_features]
        self.decoder = nn.ModuleList(ConcatSquash(a, b, latent + 32) for a, b in zip(sizes, sizes[1:]))
        for name, n in (("src", in_features), ("tgt", out_features)):
            self.register_buffer(f"{name}_mean", torch.zeros(n))
            self.register_buffer(f"{name}_std", torch.ones(n))
        # mean and std of log10 M_source, and of log10 (M_target / M_source): the head predicts the ratio
        self.register_buffer("mass_moments", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def set_moments(self, src, tgt, log_m_src, log_m_tgt) -> None:
        """Standardisation from train clouds (V, n, F) and log10 masses in the cube (V,)."""
        with torch.no_grad():
            for name, x in (("src", src), ("tgt", tgt)):
                flat = stretch(torch.as_tensor(x, dtype=torch.float64)).reshape(-1, x.shape[-1])
                getattr(self, f"{name}_mean").copy_(flat.mean(0).float())
                getattr(self, f"{name}_std").copy_(flat.std(0).clamp_min(1e-6).float())
            ms = torch.as_tensor(log_m_src, dtype=torch.float64)
            ratio = torch.as_tensor(log_m_tgt, dtype=torch.float64) - ms
            spread = lambda v: v.std().clamp_min(1e-3) if len(v) > 1 else v.new_tensor(1.0)  # noqa: E731
            self.mass_moments.copy_(torch.stack([ms.mean(), spread(ms), ratio.mean(), spread(ratio)]).float())

    def encode(self, source: torch.Tensor, log_m_src: torch.Tensor) -> torch.Tensor:
        """z (B, latent) of source clouds (B, n_in, F_in) with log10 masses in the cube (B,)."""
        h = self.point((stretch(source) - self.src_mean) / self.src_std)
        m = ((log_m_src - self.mass_moments[0]) / self.mass_moments[1])[:, None]
        return self.pool(torch.cat([h.max(1).values, h.mean(1), m], dim=1))

    def log_mass(self, z: torch.Tensor, log_m_src: torch.Tensor) -> torch.Tensor:
        """Predicted log10 target mass in the cube (B,) [Msun]: the source's times the predicted ratio."""
        return log_m_src + self.mass_head(z)[:, 0] * self.mass_moments[3] + self.mass_moments[2]

    def velocity(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """v(x_t, t | z) for standardised points x (B, n, F_out) at times t (B,)."""
        ctx = torch.cat([z, time_features(t, 32)], dim=1)[:, None]  # (B, 1, latent + 32): shared by the points
        h = x
        for i, layer in enumerate(self.decoder):
            h = layer(h, ctx)
            if i < len(self.decoder) - 1:
                h = nn.functional.silu(h)
        return h

    def loss(self, source, log_m_src, target, weight, log_m_tgt, gen: torch.Generator | None = None):
        """(flow-matching loss weighted by the points' masses, mass-head loss) of one batch."""
        z = self.encode(source, log_m_src)
        x1 = (stretch(target) - self.tgt_mean) / self.tgt_std
        x0 = torch.randn(x1.shape, generator=gen, device=x1.device, dtype=x1.dtype)
        t = torch.rand(len(x1), generator=gen, device=x1.device, dtype=x1.dtype)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        w = weight / weight.mean(1, keepdim=True)
        flow = torch.mean(w * torch.mean((self.velocity(xt, t, z) - (x1 - x0)) ** 2, dim=-1))
        mass = torch.mean(((self.log_mass(z, log_m_src) - log_m_tgt) / self.mass_moments[3]) ** 2)
        return flow, mass

    @torch.no_grad()
    def sample(self, source, log_m_src, n_points: int, steps: int = 32, gen: torch.Generator | None = None,
               chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
        """(points (B, n_points, F_out) in store units, log10 target mass (B,)): Heun's method on the
        flow ODE (2 steps - 1 network calls), ``chunk`` points at a time (points are independent given z)."""
        z = self.encode(source, log_m_src)
        out = []
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        for start in range(0, n_points, chunk):
            n = min(chunk, n_points - start)
            x = torch.randn((len(z), n, self.out_features), generator=gen, device=z.device, dtype=z.dtype)
            for i in range(steps):
                t0, t1 = float(grid[i]), float(grid[i + 1])
                v0 = self.velocity(x, torch.full((len(z),), t0, device=z.device, dtype=z.dtype), z)
                pred = x + (t1 - t0) * v0
                if i < steps - 1:  # Heun's correction (the last step is Euler's)
                    v1 = self.velocity(pred, torch.full((len(z),), t1, device=z.device, dtype=z.dtype), z)
                    pred = x + 0.5 * (t1 - t0) * (v0 + v1)
                x = pred
            out.append(unstretch(x * self.tgt_std + self.tgt_mean))
        return torch.cat(out, dim=1), self.log_mass(z, log_m_src)

    @staticmethod
    def nfe(steps: int) -> int:
        return max(2 * steps - 1, 1)


__all__ = ["CloudFlow", "random_rotations", "rotate"]
