/**
 * What a stream has sent of the reply, from the batch's `token` events. A `reset` starts the
 * reply stage's next attempt from nothing, but text a Chat Completions client has received cannot
 * be taken back: the new attempt's text is held until it runs past what was sent, and only what
 * lies beyond is sent, as long as it repeats what was sent. Once it differs, nothing more is
 * streamed, and at the end the stored reply decides: its rest is sent if it continues what was
 * sent; otherwise the stream ends with an error naming the batch, whose results hold the reply.
 */
export class ReplyText {
  private sent = '';
  private attempt = '';
  private diverged = false;

  /** The text to send for a token event ('' for none). */
  token(text: string): string {
    this.attempt += text;
    if (this.diverged) return '';
    if (this.attempt.length <= this.sent.length) {
      if (!this.sent.startsWith(this.attempt)) this.diverged = true;
      return '';
    }
    if (!this.attempt.startsWith(this.sent)) {
      this.diverged = true;
      return '';
    }
    const delta = this.attempt.slice(this.sent.length);
    this.sent = this.attempt;
    return delta;
  }

  /** A new attempt of the reply stage begins. */
  reset(): void {
    this.attempt = '';
  }

  /** What is left to send of the stored reply, or undefined when what was sent is not its start. */
  rest(reply: string): string | undefined {
    return reply.startsWith(this.sent) ? reply.slice(this.sent.length) : undefined;
  }
}
