"""The profiles that scale the training recipe down to a CPU (``basicsr schedule --profile``): their patches,
iterations, batches and folders. Read by the command line's parser too, so nothing here imports BasicSR."""
import os

# smoke profile: HR patch (LR = HR / 4; PFDN needs LR >= 15), iterations and batch per stage; stage 1 gets most
# of the few minutes so that the deployed result beats bicubic
SMOKE_GT_SIZES = (96, 112, 128, 144, 160)
SMOKE_ITERS = (500, 40, 40, 40, 30)
SMOKE_BATCH = (8, 4, 4, 4, 4)
SMOKE_ROOT = os.path.join('datasets', 'smoke')
# cpu profile: the smoke profile's patches and batches, more iterations (photos vary more than five built-in ones;
# docs/benchmarks.md, "Training on a CPU": its time and Set5 score on 2 cores)
CPU_ITERS = (800, 60, 60, 60, 40)
OWN_ROOT = os.path.join('datasets', 'own_photos')
PROFILES = {'full': '', 'smoke': 'smoke_', 'cpu': 'cpu_'}  # profile: its experiments' and folders' prefix
SMOKE_TRAIN = ('coffee.png', 'rocket.jpg', 'ihc.png', 'hubble_deep_field.jpg', 'motorcycle_left.png')
SMOKE_VAL = ('astronaut.png', 'chelsea.png')
