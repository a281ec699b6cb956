// SPDX-License-Identifier: MIT
// Slots of the Int32Array control block shared by a VecEnv and its worker threads.
//
// Main: store DONE=0, CMD, bump GEN and notify; step its own shard; wait until DONE = #workers.
// Worker: wait while GEN is unchanged; run CMD on its shard; on error post the message on its port
// and set ERR; add 1 to DONE and notify. The main thread reads error messages synchronously with
// receiveMessageOnPort, so a step never has to yield to the event loop.
export const C_GEN = 0;
export const C_CMD = 1;
export const C_DONE = 2;
export const C_ERR = 3;
export const CONTROL_SLOTS = 4;

export const CMD_STEP = 1;
export const CMD_RESET = 2;
export const CMD_CLOSE = 3;
