// `import 'pushforward/element'` defines <pushforward-sampler> (a side effect; no exports).
import type { ModelInfo, SampleResult } from './index.js';

/** <pushforward-sampler model="…" solver="heun" steps="8" points="4096" seed label guidance backend noise density declaration controls> */
export interface PushforwardSamplerElement extends HTMLElement {
  addEventListener(type: 'ready', listener: (e: CustomEvent<ModelInfo>) => void): void;
  addEventListener(type: 'sampled', listener: (e: CustomEvent<SampleResult>) => void): void;
  addEventListener(type: 'error', listener: (e: CustomEvent<string>) => void): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'pushforward-sampler': PushforwardSamplerElement;
  }
}
