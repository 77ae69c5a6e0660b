#pragma once
// Pipeline-parallel schedules as pure functions: (stages, micro-batches, kind, virtual stages)
// -> each pipeline rank's ordered list of actions, p2p included. An executor runs a rank's list
// in order, each action blocking, except that a run of actions linked by `batched_with_next`
// is one group: the executor issues its sends and receives as one batched op, and the group
// completes when all of them have. That is how a rank can send to a neighbour that is itself
// sending back (1F1B's steady state) without both blocking in their sends.
//
// Where p2p goes: each rank's compute order is timed with the default costs as if messages
// arrived the moment they were sent; each message is placed at the earliest moment between its
// producer's end and its consumer's start at which both ranks sit between computes, and a
// rank's p2p between two computes is one batched group. Both ends are then posted together and
// blocking p2p loses nothing against that timeline. Where no such moment exists (each rank
// computes while the other is free), the receiver waits: its consuming compute is held back to
// the end of the sender's compute in progress and the timeline redone, until every message has
// its moment. (Holding the sender instead put interleaved's critical rank out of step with its
// neighbour at every exchange, and its bubble above 1f1b's.)
// Whether an order deadlocks depends on the order alone, not on the costs.
//
// Stages: rank r's model chunk c holds global stage c * stages + r (Megatron's interleaving;
// with one chunk, global stage = rank). A forward of global stage g receives its input from
// stage g - 1 and sends its output to g + 1; a backward receives the output's gradient from
// g + 1 and sends the input's gradient to g - 1. Where both stages sit on one rank (one
// pipeline rank, several chunks) the tensor stays local and no p2p action is emitted.
//
// Ordering between one pair of ranks: sends from rank a to rank b are received by b in the
// order a sends them (the Communicator's point-to-point is in order per peer, untagged), so a
// schedule is only valid if the k-th send from a to b is the k-th receive on b from a;
// schedule_sim checks it.
#include <string>
#include <string_view>
#include <vector>

namespace weft::parallel {

enum class ScheduleKind { gpipe, one_f_one_b, interleaved, zero_bubble };

// "gpipe", "1f1b", "interleaved", "zb"; an unknown name throws InvalidArgument listing these.
ScheduleKind parse_schedule_kind(std::string_view name);
const char* schedule_kind_name(ScheduleKind kind);

enum class ActionKind {
  forward,
  backward,         // full backward: input gradient and weight gradient
  backward_input,   // zb's B: the input gradient only (what the previous stage waits for)
  backward_weight,  // zb's W: the weight gradient, deferred to fill the bubble
  send_activation,
  recv_activation,
  send_gradient,
  recv_gradient,
};
const char* action_kind_name(ActionKind kind);
bool is_compute(ActionKind kind);  // forward and the backwards; the rest are p2p

struct Action {
  ActionKind kind = ActionKind::forward;
  int micro_batch = 0;
  // Model chunk on this rank (0 .. virtual_stages-1). For p2p, the chunk that produces the
  // tensor (send) or consumes it (recv) on this rank.
  int chunk = 0;
  int peer = -1;                   // p2p only: the other pipeline rank
  bool batched_with_next = false;  // p2p only: issued as one group with the next action
};

// For messages: "send_activation(mb 3, chunk 1, to rank 2)".
std::string to_string(const Action& action);

// Time each compute takes on a core of its own, in units of a forward. The defaults are what
// make_schedule places p2p and zb's weight gradients for, and what the simulator charges unless
// given measured costs (in seconds, say).
struct ActionCosts {
  double forward = 1;
  double backward = 2;  // full backward = backward_input + backward_weight
  double backward_input = 1;
  double backward_weight = 1;
  // One p2p message's copy, on each end, once both ends are posted (the simulator only;
  // make_schedule places p2p as if it took no time).
  double transfer = 0;
};
double cost_of(ActionKind kind, const ActionCosts& costs);  // 0 for p2p

// schedule[r] is pipeline rank r's ordered action list.
using Schedule = std::vector<std::vector<Action>>;

// Throws InvalidArgument, naming the number to change, when the layout cannot run: stages,
// micro_batches and virtual_stages must be >= 1; 1f1b and zb need micro_batches >= stages;
// interleaved needs virtual_stages >= 2 and micro_batches a multiple of stages; the others need
// virtual_stages == 1.
void check_schedule_layout(int stages, int micro_batches, ScheduleKind kind, int virtual_stages);

// gpipe: all forwards, then all backwards. 1f1b: stages - rank - 1 warm-up forwards, then one
// forward and one backward in turn, then the remaining backwards (PipeDream-flush). interleaved:
// Megatron's interleaved 1F1B over virtual_stages chunks per rank; with the default costs (each
// chunk's forward and backward costing a whole stage's) its idle fraction is
// (p - 1) / (v m + p - 1): 1f1b's bubble behind v times the work. zb: ZB-H1, 1f1b's order with
// each backward split into backward_input and backward_weight, the weight gradients deferred to
// where the rank would wait; stage 0 holds at most `stages` micro-batches, as with 1f1b.
Schedule make_schedule(int stages, int micro_batches, ScheduleKind kind, int virtual_stages = 1);

// The most micro-batches whose activations a rank holds at once: forwards done minus backwards
// (full, or backward_input, after which only the weight gradient's inputs remain) done, over
// every prefix of its list. Each (micro-batch, chunk) counts once.
int peak_in_flight(const std::vector<Action>& rank_actions);

}  // namespace weft::parallel
