"""Model building blocks shared by the papers.

activations  ACTIVATIONS, make_activation: activations by name, some with per-channel parameters.
resnet       RESNETS, make_resnet, ResNet: one ResNet family with a pluggable spatial layer and activation.
counting     count_params, count_flops, count_model_flops: the sizes a paper's `--dry_run` prints.
locally_connected  LowRankLocallyConnected2D, LocallyConnected2D, matched_conv_width: LRLC / LC layers and the
             parameter-matched wide conv rule.
cached_conv  RingLayout, PixelRingLayout, row_cache_conv, pixel_ring_write/window, run_every,
             generate_in_raster_order: the cached-conv engine of fast autoregressive generation (1-D rings, 2-D row
             caches and pixel rings, the compiled loop with a sampling hook), shared by WaveNet and PixelCNN++.
wavenet      WaveNet, make_generator, generate: WaveNet (gated or plain ReLU) with naive and cached generation.
pixelcnn     PixelCNNPlusPlus, ShiftedConv, make_naive_sampler: PixelCNN++ (two causal streams, 3 scales, weight
             normalisation) and its naive one-forward-pass-per-pixel generator.
logistic_mixture  log_prob, sample, bits_per_dim: the discretised logistic mixture likelihood (grey or RGB).
lstm         LSTMLayer, make_layers, LSTMLanguageModel: LSTM layers (forget bias 1) and a next-token LSTM language
             model whose `layers/0` is the part a seq2seq warm start copies.
seq2seq      Seq2Seq, Memory, generate, SOURCE_LM_MAPPING, TARGET_LM_MAPPING: LSTM encoder-decoder with Luong
             attention, the residual from the first decoder layer and attention over the first encoder layer.
beam_search  beam_search, greedy_decode, tile_for_beams: jittable decoding over any step function.
"""
