/** The lossless stop (../support/lossless-stop-suite.ts) of the overlapped and blocking models. */
import { losslessStopSuite } from '../support/lossless-stop-suite.js';
import { DRAINING_MODELS } from '../support/streaming-client.js';

losslessStopSuite(DRAINING_MODELS.slice(0, 4));
