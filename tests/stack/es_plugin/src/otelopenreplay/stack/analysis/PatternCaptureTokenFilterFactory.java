package otelopenreplay.stack.analysis;

import java.util.List;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.BooleanSetting;
import org.elasticsearch.plugin.settings.ListSetting;

/**
 * Token filter {@code pattern_capture}: emits every capture group of every pattern as a token, plus the
 * original token when {@code preserve_original} (default true). With no patterns it passes tokens through.
 */
@NamedComponent("pattern_capture")
public final class PatternCaptureTokenFilterFactory implements TokenFilterFactory {

    /** Settings of {@code pattern_capture}, named as in Elasticsearch's own filter. */
    @AnalysisSettings
    public interface Settings {
        @ListSetting(path = "patterns")
        List<String> patterns();

        @BooleanSetting(path = "preserve_original", defaultValue = true)
        boolean preserveOriginal();
    }

    private final Pattern[] patterns;
    private final boolean preserveOriginal;

    @Inject
    public PatternCaptureTokenFilterFactory(Settings settings) {
        List<String> sources = settings.patterns();
        this.patterns = sources == null ? new Pattern[0] : sources.stream().map(Pattern::compile).toArray(Pattern[]::new);
        this.preserveOriginal = settings.preserveOriginal();
    }

    @Override
    public TokenStream create(TokenStream input) {
        if (patterns.length == 0) {
            return input;
        }
        return new PatternCaptureGroupTokenFilter(input, preserveOriginal, patterns);
    }
}
