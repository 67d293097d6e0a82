package org.loratransplant.align;

/** The propagation rule a span pair falls under. */
public enum SpanKind {
    /** One source token, one target token: the score is copied. */
    ONE_TO_ONE,
    /** One source token, several target tokens: the score is copied to each. */
    ONE_TO_MANY,
    /** Several source tokens, one target token: the target gets their average. */
    MANY_TO_ONE,
    /** Several on both sides: every target token gets the source average. */
    MANY_TO_MANY,
    /** The texts differ here: target tokens get 0. */
    UNMATCHED
}
