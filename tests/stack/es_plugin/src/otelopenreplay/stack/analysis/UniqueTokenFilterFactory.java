package otelopenreplay.stack.analysis;

import java.io.IOException;
import java.util.Arrays;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.FilteringTokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;

/** Token filter {@code unique}: drops a term already seen earlier in the same stream (case-sensitive). */
@NamedComponent("unique")
public final class UniqueTokenFilterFactory implements TokenFilterFactory {

    @Override
    public TokenStream create(TokenStream input) {
        return new UniqueTokenFilter(input);
    }

    /** Keeps the first occurrence of each term; the set of seen terms is cleared on reset. */
    static final class UniqueTokenFilter extends FilteringTokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);

        UniqueTokenFilter(TokenStream input) {
            super(input);
        }

        @Override
        protected boolean accept() {
            char[] buffer = term.buffer();
            int length = term.length();
            if (seen.contains(buffer, 0, length)) {
                return false;
            }
            seen.add(Arrays.copyOf(buffer, length));
            return true;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }
}
