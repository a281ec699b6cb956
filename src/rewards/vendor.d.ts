// SPDX-License-Identifier: MIT
// Types for the untyped lexicon packages the text rewards call.
declare module 'vader-sentiment' {
  const vader: {
    SentimentIntensityAnalyzer: { polarity_scores(text: string): { neg: number; neu: number; pos: number; compound: number } };
  };
  export default vader;
}
declare module 'sentiment' {
  class Sentiment {
    analyze(text: string): { score: number; comparative: number; tokens: string[]; words: string[] };
  }
  export default Sentiment;
}
declare module 'text-readability' {
  const readability: Record<string, (text: string) => number>;
  export default readability;
}
