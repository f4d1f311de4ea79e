"""The patch table: every change this plugin makes to LeRobot's objects, in install order.

One row is on draccus, the config parser LeRobot pins (its version follows from LeRobot's).

Each row names the LeRobot attribute, how it is replaced (:mod:`.core`), the parameter names the
hooks rely on (checked at install), the hook layers in their nesting order (outermost first),
the roles that install it, why, and the LeRobot issue behind it where there is one. The features'
logic lives in their modules (``registry``, ``fixes``, ``learner``, ``actor``, ``launcher``, ``so101``), which
register hooks with :func:`.core.hook`; docs/patches.md lists this table (tests/test_patches.py
keeps the two equal).
"""

from __future__ import annotations

from .core import Row

LEARNER = "lerobot.rl.learner"
ACTOR = "lerobot.rl.actor"

_SERVICE_METHOD = ("self", "request_iterator", "_context")
_STREAM = ("cfg", "{queue}", "shutdown_event", "learner_client", "grpc_channel")


def _stream(queue: str) -> tuple[str, ...]:
    return tuple(queue if name == "{queue}" else name for name in _STREAM)


ROWS: tuple[Row, ...] = (
    # --- a plain import of the plugin (every process, LeRobot's own CLIs included) ---
    Row(
        "lerobot.rl.algorithms.factory.get_algorithm_class",
        "wrap",
        ("name",),
        ("registry",),
        ("import",),
        "LeRobot's lookup knows only 'sac'; the hook answers the types this plugin registers ('e2hil', "
        "'sac_fast') and defers every other name, 'sac' included, to LeRobot's lookup, whose class it "
        "returns unchanged",
    ),
    Row(
        "lerobot.policies.gaussian_actor.modeling_gaussian_actor.GaussianActorPolicy.select_action",
        "wrap",
        ("self", "batch"),
        ("fixes",),
        ("import",),
        "lerobot-eval passes non-tensor batch entries ('task', 'action') that the discrete critic calls "
        ".to() on; the hook drops them",
    ),
    Row(
        "lerobot.rl.buffer.ReplayBuffer._lerobotdataset_to_transitions",
        "wrap",
        ("dataset", "state_keys"),
        ("fixes",),
        ("import",),
        "make_dataset opens datasets with return_uint8=True, so the offline buffer held 0-255 float "
        "images; the hook scales uint8 images to [0, 1]",
    ),
    Row(
        "lerobot.datasets.dataset_writer.embed_images",
        "wrap",
        ("dataset",),
        ("fixes",),
        ("import",),
        "save_episode maps embed_table_storage over every row of every episode, a no-op for state-only "
        "and video datasets and 70% of the time a checkpoint takes to write its replay buffers; the "
        "hook returns a dataset without image or audio features unchanged",
        replaces="fixes: for datasets with nothing to embed (the tables written hold the same columns, "
        "values and schema)",
    ),
    Row(
        "lerobot.model.kinematics.RobotKinematics.__init__",
        "wrap",
        ("self", "urdf_path", "target_frame_name", "joint_names"),
        ("fixes",),
        ("import",),
        "the EE action pipeline solves IK with one undamped placo step from the previous solution; near "
        "the SO101's wrist_flex limit a 1-2 cm target step flips the elbow to its other limit (an EE "
        "jump of about 0.2 m that the 5 cm safety check stops, on a real arm too); the hook adds a "
        "damping (regularization) task to the solver",
        "lerobot#1966",
    ),
    Row(
        "draccus.wrappers.docstring.get_attribute_docstring",
        "wrap",
        ("some_dataclass", "field_name"),
        ("fixes",),
        ("import",),
        "every LeRobot command-line parse looks up each field's help text by scanning its class's "
        "source, the same class and field several times (9.2k lookups, 2.1k distinct, ~2.5 of the "
        "~3.4 CPU-seconds a parse of the sim learner's config takes); the hook keeps each answer",
        replaces="fixes: for a class and field already looked up in the process (draccus's answer "
        "depends only on the class's source; the same object, which draccus only reads, is returned)",
    ),
    # --- the learner ---
    Row(
        f"{LEARNER}.grpc",
        "proxy",
        (
            (
                "server",
                (
                    "thread_pool",
                    "handlers",
                    "interceptors",
                    "options",
                    "maximum_concurrent_rpcs",
                    "compression",
                    "xds",
                ),
            ),
        ),
        ("security",),
        ("learner",),
        "TLS and the token check on LeRobot's own server, the bind check, and --faults.grpc_workers "
        "server threads (LeRobot's MAX_WORKERS = 3 leaves none for a replacement actor)",
        "lerobot#3979",
    ),
    Row(
        f"{LEARNER}.LearnerService",
        "subclass",
        (
            ("SendTransitions", _SERVICE_METHOD),
            ("SendInteractions", _SERVICE_METHOD),
            ("StreamParameters", ("self", "request", "context")),
        ),
        ("learner.peers",),
        ("learner",),
        "a parameter stream ends when its actor is gone (it kept a server thread for ever), each "
        "actor gets every weights version, messages are tagged with their actor and size-limited",
        "lerobot#3979",
    ),
    Row(
        f"{LEARNER}.start_learner",
        "wrap",
        ("parameters_queue", "transition_queue", "interaction_message_queue", "shutdown_event", "cfg"),
        ("learner.server",),
        ("learner",),
        "a gRPC server that cannot start ends the learner with one line (LeRobot logged it and trained on)",
    ),
    Row(
        f"{LEARNER}.bytes_to_transitions",
        "wrap",
        ("buffer",),
        ("learner.transitions",),
        ("learner",),
        "transitions are decoded from safetensors, never unpickled; a message that does not decode "
        "and transitions that do not match the policy's features are skipped and counted instead of "
        "ending the training loop",
        replaces="learner.transitions: unpickling is the fault, so LeRobot's function is never called",
    ),
    Row(
        f"{LEARNER}.state_to_bytes",
        "wrap",
        ("state_dict",),
        ("wire",),
        ("learner",),
        "the weights pushed to the actors are encoded as safetensors (the actor never unpickles them)",
        replaces="wire: another encoding, so LeRobot's function is never called",
    ),
    Row(
        f"{LEARNER}.add_actor_information_and_train",
        "wrap",
        (
            "cfg",
            "wandb_logger",
            "shutdown_event",
            "transition_queue",
            "interaction_message_queue",
            "parameters_queue",
        ),
        ("learner.loop",),
        ("learner",),
        "an exception in the training loop makes the learner exit 1 (LeRobot logged it and exited 0)",
    ),
    Row(
        f"{LEARNER}.TrainRLServerPipelineConfig",
        "subclass",
        (
            (
                "from_pretrained",
                (
                    "pretrained_name_or_path",
                    "force_download",
                    "resume_download",
                    "proxies",
                    "token",
                    "cache_dir",
                    "local_files_only",
                    "revision",
                    "kwargs",
                ),
            ),
        ),
        ("config",),
        ("learner",),
        "a resume reads the checkpoint's train_config.json, whose 'faults' section LeRobot's class "
        "rejects; the hook reads it as the plugin's E2HiLTrainConfig",
        replaces="config: LeRobot's from_pretrained, inherited, runs on the subclass instead of on "
        "LeRobot's class (a class method's class cannot be passed on)",
    ),
    Row(
        f"{LEARNER}.handle_resume_logic",
        "wrap",
        ("cfg",),
        ("config", "learner.resume"),
        ("learner",),
        "resume from the newest complete checkpoint with its policy weights (LeRobot rebuilt the "
        "policy from random), keep --output_dir and address flags, check the port; the resumed "
        "config keeps the 'faults' section the learner runs with, so the next checkpoint saves it",
    ),
    Row(
        f"{LEARNER}.load_training_state",
        "wrap",
        ("cfg", "optimizers", "algorithm", "device"),
        ("learner.resume",),
        ("learner",),
        "a resume whose training state does not load fails instead of restarting from step 0",
    ),
    Row(
        f"{LEARNER}.initialize_offline_replay_buffer",
        "wrap",
        ("cfg", "device", "storage_device"),
        ("learner.resume", "launcher.intervention_buffer"),
        ("learner",),
        "no offline buffer on a resume whose checkpoint saved none; a dataset-free sim run starts "
        "from an empty intervention buffer",
        replaces="launcher.intervention_buffer: a fresh dataset-free run gets an empty ReplayBuffer where "
        "LeRobot would load a dataset",
    ),
    Row(
        f"{LEARNER}.bytes_to_python_object",
        "wrap",
        ("buffer",),
        ("wire",),
        ("learner",),
        "the interaction message is decoded from JSON, never unpickled (a pickle from the network runs code)",
        replaces="wire: unpickling is the fault, so LeRobot's function is never called",
    ),
    Row(
        f"{LEARNER}.process_interaction_message",
        "wrap",
        ("message", "interaction_step_shift", "wandb_logger"),
        ("launcher.metrics", "learner.counter"),
        ("learner",),
        "a message that does not decode is skipped and counted; env steps are counted across "
        "restarts and actors; the sim writes one episode record per message",
    ),
    Row(
        f"{LEARNER}.RLTrainer",
        "subclass",
        (
            ("__init__", ("self", "algorithm", "data_mixer", "batch_size", "preprocessor")),
            ("training_step", ("self",)),
        ),
        ("launcher.lockstep", "launcher.metrics", "learner.stats"),
        ("learner",),
        "the training stats carry the transition counters; the sim averages them into metrics.jsonl; "
        "the lockstep holds the update a stopping learner would do past what its data allow",
        replaces="launcher.lockstep: only when the run is stopping and the learner has done every update "
        "its data allow (LeRobot's loop updates once more before it sees the stop)",
    ),
    Row(
        f"{LEARNER}.save_training_checkpoint",
        "wrap",
        (
            "cfg",
            "optimization_step",
            "online_steps",
            "interaction_message",
            "policy",
            "optimizers",
            "replay_buffer",
            "algorithm",
            "offline_replay_buffer",
            "dataset_repo_id",
            "fps",
            "preprocessor",
            "postprocessor",
        ),
        ("checkpoints",),
        ("learner",),
        "checkpoints are written to a staging directory and published atomically with the run counters",
    ),
    Row(
        f"{LEARNER}.push_actor_policy_to_queue",
        "wrap",
        ("parameters_queue", "algorithm"),
        ("launcher.lockstep",),
        ("learner",),
        "lockstep: weights go out only when the learner has caught up, with its progress",
        replaces="launcher.lockstep: it does LeRobot's two lines (get_weights, state_to_bytes) itself, adding "
        "the progress entry, and only when the learner has caught up",
    ),
    Row(
        f"{LEARNER}.process_transitions",
        "wrap",
        ("transition_queue", "replay_buffer", "offline_replay_buffer", "dataset_repo_id", "shutdown_event"),
        ("launcher.lockstep",),
        ("learner",),
        "lockstep: the updates allowed are counted from the transitions taken in",
    ),
    Row(
        f"{LEARNER}.process_interaction_messages",
        "wrap",
        ("interaction_message_queue", "interaction_step_shift", "wandb_logger", "shutdown_event"),
        ("launcher.lockstep",),
        ("learner",),
        "lockstep: the learner waits here for data once it has done the updates its data allow",
    ),
    # --- the actor ---
    Row(
        f"{ACTOR}.python_object_to_bytes",
        "wrap",
        ("python_object",),
        ("wire",),
        ("actor",),
        "the episode message is sent as JSON, not pickled",
        replaces="wire: the message must not be pickled, so LeRobot's function is never called",
    ),
    Row(
        f"{ACTOR}.transitions_to_bytes",
        "wrap",
        ("transitions",),
        ("wire",),
        ("actor",),
        "transitions are sent as safetensors, not pickled",
        replaces="wire: another encoding, so LeRobot's function is never called",
    ),
    Row(
        f"{ACTOR}.bytes_to_state_dict",
        "wrap",
        ("buffer",),
        ("launcher.lockstep", "wire"),
        ("actor",),
        "weights are decoded from safetensors with a size limit, never unpickled; lockstep takes the "
        "learner's progress entry out of them before LeRobot loads them",
        replaces="wire: unpickling is the fault, so LeRobot's function is never called",
    ),
    Row(
        f"{ACTOR}.learner_service_client",
        "wrap",
        ("host", "port"),
        ("actor.reconnect",),
        ("actor",),
        "the channel's reconnect back-off is capped at --faults.retry_interval_s (gRPC's grows to "
        "120 s), over TLS with the token and the actor id on every call",
        replaces="actor.reconnect: LeRobot's function opens a plaintext channel with fixed options; "
        "the channel is built with other options and credentials",
    ),
    Row(
        f"{ACTOR}.establish_learner_connection",
        "wrap",
        ("stub", "shutdown_event", "attempts"),
        ("actor.reconnect",),
        ("actor",),
        "Ready() with a deadline, retried for at most --faults.connect_timeout_s, every attempt logged; "
        "a refused token or TLS mismatch ends the actor with one line",
        "lerobot#3979",
        replaces="actor.reconnect: LeRobot's loop calls Ready() without a deadline (it can hang for "
        "ever) a fixed number of times; a wrapper cannot bound a call inside it",
    ),
    Row(
        f"{ACTOR}.send_transitions",
        "wrap",
        _stream("transitions_queue"),
        ("actor.reconnect",),
        ("actor",),
        "the stream reopens after a learner restart and resends what was in flight",
    ),
    Row(
        f"{ACTOR}.send_interactions",
        "wrap",
        _stream("interactions_queue"),
        ("actor.reconnect",),
        ("actor",),
        "the stream reopens after a learner restart and resends what was in flight",
    ),
    Row(
        f"{ACTOR}.receive_policy",
        "wrap",
        _stream("parameters_queue"),
        ("actor.reconnect",),
        ("actor",),
        "the stream reopens after a learner restart",
    ),
    Row(
        f"{ACTOR}.get_frequency_stats",
        "wrap",
        ("timer",),
        ("learner.counter",),
        ("actor",),
        "the episode message carries the episode's length ('Episode steps') for the learner's counts",
    ),
    Row(
        f"{ACTOR}.push_transitions_to_transport_queue",
        "wrap",
        ("transitions", "transitions_queue"),
        ("learner.counter",),
        ("actor",),
        "counts the transitions handed to the learner (logs, lockstep)",
    ),
    Row(
        f"{ACTOR}.reset_and_build_transition",
        "wrap",
        ("env", "env_processor", "action_processor"),
        ("setup_checks",),
        ("actor",),
        "the first observation is checked against the policy's features (one paragraph, not a "
        "shape error deep in the policy)",
    ),
    Row(
        f"{ACTOR}.act_with_policy",
        "wrap",
        ("cfg", "shutdown_event", "parameters_queue", "transitions_queue", "interactions_queue"),
        ("launcher.budget", "actor.fatal"),
        ("actor",),
        "an exception in the policy loop makes the actor exit non-zero (LeRobot exited 0); the sim "
        "actor stops by itself once its step budget is spent and tags episodes with the cube position "
        "and success",
    ),
    Row(
        f"{ACTOR}.precise_sleep",
        "wrap",
        ("seconds", "spin_threshold", "sleep_margin"),
        ("launcher.pacing",),
        ("actor",),
        "no real-time pacing in simulation (optionally a rate cap)",
        replaces="launcher.pacing: the sleep itself is what the sim does without",
    ),
    Row(
        f"{ACTOR}.step_env_and_process_transition",
        "wrap",
        ("env", "transition", "action", "env_processor", "action_processor"),
        ("launcher.position",),
        ("actor",),
        "remembers the cube position index of the latest step's info and whether the episode succeeded "
        "(rollout.step_succeeded) for the episode message",
    ),
    Row(
        f"{ACTOR}.update_policy_parameters",
        "wrap",
        ("algorithm", "parameters_queue", "device"),
        ("launcher.lockstep", "wire"),
        ("actor",),
        "weights that do not decode are skipped and counted (the actor keeps its weights); lockstep: "
        "at an episode end the actor waits for weights that cover what it sent",
    ),
    # --- the SO101 recorder ---
    Row(
        "lerobot.rl.gym_manipulator.LeRobotDataset",
        "subclass",
        (
            (
                "create",
                (
                    "repo_id",
                    "fps",
                    "features",
                    "root",
                    "robot_type",
                    "use_videos",
                    "tolerance_s",
                    "image_writer_processes",
                    "image_writer_threads",
                    "video_backend",
                    "batch_encoding_size",
                    "rgb_encoder",
                    "depth_encoder",
                    "metadata_buffer_size",
                    "streaming_encoding",
                    "encoder_queue_maxsize",
                    "encoder_threads",
                    "video_files_size_in_mb",
                    "data_files_size_in_mb",
                ),
            ),
        ),
        ("so101.record",),
        ("record",),
        "the recorder finalizes the datasets control_loop creates (LeRobot 0.6.1 finalizes them only "
        "when pushing to the hub; otherwise the dataset on disk is unreadable)",
    ),
)
