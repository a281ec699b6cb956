// SPDX-License-Identifier: MIT
// Continuous-control policies and PPO (CleanRL's ppo_continuous_action.py semantics) on plain ATen
// tensors: a Gaussian MLP policy with a state-independent log-std and a separate value MLP (tanh,
// orthogonal init), observation normalisation that can be frozen, reward normalisation by the running
// std of discounted returns, GAE, clipped policy and value losses, entropy bonus, grad-norm clipping and
// Adam on one flat parameter buffer. Names follow CleanRL's Agent (actor_mean.0.weight, critic.4.bias,
// actor_logstd) so checkpoints read like the PyTorch ones.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace soup {
namespace control {

// Throws std::runtime_error with a "[ERR_SOUP_<code>] " prefix (mapped to SoupError codes in TS).
[[noreturn]] void Fail(const char* code, const std::string& msg);

// gym's RunningMeanStd (parallel-variance merge), float64; count starts at 1e-4 with mean 0, var 1.
struct RunningStat {
  at::Tensor mean, var;  // [D] float64
  double count = 1e-4;
  void Init(int64_t d);
  void Update(const at::Tensor& batch);  // [B, D] float64
};

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;
};

struct PPOHyper {
  double gamma = 0.99, lam = 0.95, clip = 0.2, vfCoef = 0.5, entCoef = 0.0, maxGradNorm = 0.5;
  double lr = 3e-4, adamEps = 1e-5, b1 = 0.9, b2 = 0.999, rewardClip = 10.0;
  int64_t epochs = 10, minibatches = 32;
  bool clipVloss = true, normAdv = true, normReward = true;
};

struct LossOut {
  at::Tensor loss, pgLoss, vLoss, entropy, approxKl, clipfrac;
};

struct Policy {
  int64_t O = 0, A = 0;
  std::vector<int64_t> hidden;
  at::ScalarType dtype = at::kFloat;
  std::vector<ParamSpec> specs;
  at::Tensor flat;  // every parameter, one leaf tensor (requires grad); views are taken per forward
  RunningStat obsRms;
  bool frozen = false;
  double obsClip = 10.0;
  // reward normalisation (gym NormalizeReward): running stat of discounted returns, one accumulator per env
  RunningStat retRms;
  at::Tensor retAcc;  // [N] float64
  // Adam state over flat
  at::Tensor m, v;
  int64_t adamStep = 0;
  at::Generator gen;
  // rollout storage filled by Act(train): [T, N, ·]
  int64_t T = 0, N = 0;
  at::Tensor bObs, bAct, bLogp, bVal;
  std::atomic<bool> busy{false};

  void Init(int64_t obsDim, int64_t actDim, std::vector<int64_t> hiddenSizes, at::ScalarType dt, uint64_t seed);
  void SetRollout(int64_t numSteps, int64_t numEnvs);
  at::Tensor Param(const std::string& name) const;      // a view of flat (carries grad when flat does)
  at::Tensor Normalize(const at::Tensor& obs64) const;  // [B, O] float64 -> [B, O] dtype, clipped
  at::Tensor ActorMean(const at::Tensor& x) const;
  at::Tensor Value(const at::Tensor& x) const;  // [B]
  at::Tensor LogStd() const;                    // [A]
  // One step for all envs: obs [N, O] float32 in, actions [N, A] float32 out. train: update the obs
  // statistics (unless frozen) and store the normalised obs, action, log-prob and value at row t.
  void Act(const float* obs, float* actions, int64_t n, int64_t t, bool deterministic, bool train);
  std::vector<std::pair<std::string, at::Tensor>> Tensors() const;  // params (dtype) + obs_rms.* (float64)
  void SetTensors(const std::map<std::string, at::Tensor>& t);
};

// Log-density of actions under N(mean, exp(logstd)) summed over action dims, and the entropy.
at::Tensor GaussianLogProb(const at::Tensor& a, const at::Tensor& mean, const at::Tensor& logstd);
at::Tensor GaussianEntropy(const at::Tensor& logstd, int64_t batch);

// GAE over [T, N] float64: done[t] = the episode ended at step t (no bootstrap past it).
void Gae(const at::Tensor& rewards, const at::Tensor& values, const at::Tensor& dones, const at::Tensor& lastValues, double gamma, double lam, at::Tensor* adv,
         at::Tensor* ret);

// gym 0.23 NormalizeReward over a rollout, in place on rewards [T, N] float64 (then clipped to ±clip).
void NormalizeRewards(at::Tensor& rewards, const at::Tensor& dones, double gamma, double clip, RunningStat& rms, at::Tensor& acc);

// CleanRL's loss on one minibatch (obs already normalised); forward with grad through p.flat.
LossOut PPOLossOn(const Policy& p, const at::Tensor& obs, const at::Tensor& act, const at::Tensor& oldLogp, const at::Tensor& adv, const at::Tensor& ret,
                  const at::Tensor& oldVal, const PPOHyper& h);

// Clips the gradient of p.flat to h.maxGradNorm (torch clip_grad_norm_), returns the norm before clipping.
double ClipGrad(Policy& p, double maxNorm);
// One Adam step on p.flat with its gradient (torch.optim.Adam, no weight decay).
void AdamStep(Policy& p, double lr, double b1, double b2, double eps);

struct UpdateIn {
  at::Tensor rewards;                // [T, N, R] float32
  at::Tensor weights;                // [R] float64
  at::Tensor terminated, truncated;  // [T, N] uint8
  at::Tensor finalObs;               // [T, N, O] float32
  at::Tensor lastObs;                // [N, O] float32
};

std::map<std::string, double> PPOUpdate(Policy& p, const UpdateIn& in, const PPOHyper& h);

}  // namespace control
}  // namespace soup
